// The pgen web page: plain JS over the REST routes. User data is only ever set as
// textContent, never as HTML, so a document cannot inject markup into the page.
"use strict";

const $ = (id) => document.getElementById(id);
let apiKey = localStorage.getItem("pgen-key") || "";
let current = null;

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: `Bearer ${apiKey}` } };
  if (body instanceof FormData) {
    options.body = body;  // multipart: the browser sets the boundary
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  return data;
}

function item(list, text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  list.appendChild(li);
  return li;
}

async function loadUsers() {
  const data = await api("GET", "/users?limit=1000");
  const select = $("users");
  select.replaceChildren();
  for (const user of data.users) {
    const option = document.createElement("option");
    option.value = user.user_id;
    option.textContent = `${user.user_id} (${user.documents} docs)`;
    select.appendChild(option);
  }
  status(`${data.users.length} users`);
}

async function loadStrategies() {
  const data = await api("GET", "/v1/models");
  const select = $("strategy");
  select.replaceChildren();
  for (const model of data.data) {
    const name = model.id.replace(/^pgen\/?/, "");
    if (!name || name === "none") continue;
    const option = document.createElement("option");
    option.value = option.textContent = name;
    if (name === "rag") option.selected = true;
    select.appendChild(option);
  }
}

function shown(value) {
  if (Array.isArray(value)) return value.map(shown).join(", ");
  if (value !== null && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k}: ${shown(v)}`).join("; ");
  }
  return String(value);
}

function showProfile(profile) {
  const body = $("profile").tBodies[0];
  body.replaceChildren();
  const entries = Object.entries(profile || {});
  if (!entries.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 2;
    cell.className = "empty";
    cell.textContent = "No profile attributes";
  }
  for (const [key, value] of entries) {
    const row = body.insertRow();
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = key;
    const cell = row.insertCell();
    cell.textContent = shown(value);
    cell.title = cell.textContent;
    row.prepend(name);
  }
}

async function showUser(userId) {
  current = userId;
  const view = await api("GET", `/users/${encodeURIComponent(userId)}?limit=1000`);
  $("who").textContent = `· ${userId}`;
  showProfile(view.user.profile);
  const docs = $("documents");
  docs.replaceChildren();
  for (const doc of view.documents) {
    const li = item(docs, "");
    li.dataset.docId = doc.doc_id;
    li.title = doc.text;
    const id = document.createElement("span");
    id.className = "doc-id";
    id.textContent = doc.doc_id;
    li.append(id, document.createTextNode(doc.text));
  }
  const shown = view.documents.length;
  $("documents-count").textContent = shown < view.total_documents
    ? `(${view.total_documents}, newest ${shown} shown)` : `(${view.total_documents})`;
  const subjects = $("subjects");
  subjects.replaceChildren();
  for (const subject of view.subjects) item(subjects, `${subject.name} (${subject.class_word})`);
  $("subjects-count").textContent = `(${view.subjects.length})`;
  $("counts").textContent =
    `${view.total_documents} documents, ${view.interactions} interactions, ` +
    `${view.feedback} feedback`;
  await loadOutputs();
  $("generate").disabled = false;
  $("delete").disabled = false;
  $("photo-button").disabled = false;
}

async function loadOutputs() {
  const outputs = await api("GET", `/users/${encodeURIComponent(current)}/outputs`);
  const list = $("outputs");
  list.replaceChildren();
  $("outputs-count").textContent = `(${outputs.length}${outputs.length > 10 ? ", newest 10 shown" : ""})`;
  for (const output of outputs.slice(-10).reverse()) {
    item(list, `[${output.strategy}] ${output.instruction} → ${output.text}`);
  }
}

function showAnswer(panel, result) {
  panel.querySelector(".text").textContent = result.text;
  const used = result.provenance.documents;
  panel.querySelector(".shaped").textContent =
    used.length ? `Shaped by: ${used.join(", ")}` : "Shaped by no context";
  panel.dataset.outputId = result.output_id;
  for (const button of panel.querySelectorAll(".thumbs button")) {
    button.disabled = false;
    button.setAttribute("aria-pressed", "false");
  }
}

async function ask(event) {
  event.preventDefault();
  const instruction = $("instruction").value.trim();
  if (!instruction || !current) return;
  const strategy = $("strategy").value || "rag";
  status("generating…");
  $("generate").disabled = true;
  try {
    const body = { instruction, strategies: ["none", strategy] };
    const length = Number($("max-tokens").value);
    if (length > 0) body.max_new_tokens = length;
    const data = await api("POST", `/users/${encodeURIComponent(current)}/compare`, body);
    const [baseline, personalized] = data.results;
    showAnswer($("baseline"), baseline);
    $("personalized").querySelector(".strategy").textContent = strategy;
    showAnswer($("personalized"), personalized);
    const used = new Set(personalized.provenance.documents);
    for (const li of $("documents").children) li.classList.toggle("used", used.has(li.dataset.docId));
    if (used.size) $("documents-box").open = true;  // show what shaped the answer
    const first = $("documents").querySelector("li.used");
    if (first) first.scrollIntoView({ block: "nearest" });
    await loadOutputs();
    status("done");
  } catch (error) {
    status(error.message, true);
  } finally {
    $("generate").disabled = false;
  }
}

async function thumbs(event) {
  const button = event.target.closest("button[data-thumbs]");
  if (!button) return;
  const panel = button.closest(".answer");
  try {
    await api("POST", `/users/${encodeURIComponent(current)}/feedback`, {
      output_id: panel.dataset.outputId, thumbs: Number(button.dataset.thumbs),
    });
    for (const other of panel.querySelectorAll(".thumbs button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    status(`feedback recorded (${button.dataset.thumbs === "1" ? "up" : "down"})`);
  } catch (error) {
    status(error.message, true);
  }
}

async function deleteUser() {
  if (!current) return;
  if (!confirm(`Delete user ${current} and everything derived from them?`)) {
    status(`kept ${current}`);
    return;
  }
  try {
    const deleted = current;
    await api("DELETE", `/users/${encodeURIComponent(deleted)}`);
    current = null;
    for (const id of ["documents", "subjects", "outputs"]) $(id).replaceChildren();
    $("who").textContent = "";
    $("profile").tBodies[0].replaceChildren();
    for (const id of ["documents-count", "subjects-count", "outputs-count", "counts"]) $(id).textContent = "";
    $("delete").disabled = $("generate").disabled = $("photo-button").disabled = true;
    await loadUsers();
    status(`deleted ${deleted}`);
  } catch (error) {
    status(error.message, true);
  }
}

async function uploadRecords(event) {
  event.preventDefault();
  const file = $("records-file").files[0];
  if (!file) return status("choose a JSONL file of records first", true);
  const form = new FormData();
  form.append("file", file);
  try {
    const data = await api("POST", "/records/jsonl", form);
    const kinds = Object.entries(data.seen).map(([kind, n]) => `${n} ${kind}`).join(", ");
    const seen = Object.values(data.seen).reduce((a, b) => a + b, 0);
    $("upload-result").textContent =
      `${file.name}: ${data.written} of ${seen} records written (${kinds})`;
    await loadUsers();
    if (current) await showUser(current);
    status("records uploaded");
  } catch (error) {
    status(error.message, true);
  }
}

async function uploadPhoto(event) {
  event.preventDefault();
  const file = $("photo-file").files[0];
  if (!file || !current) return status("choose a user and a photo first", true);
  const form = new FormData();
  form.append("file", file);
  try {
    const data = await api("POST", `/users/${encodeURIComponent(current)}/uploads`, form);
    $("upload-result").textContent =
      `${file.name} saved as ${data.ref}: name it in a subject record's image_paths`;
    status("photo uploaded");
  } catch (error) {
    status(error.message, true);
  }
}

async function connect(event) {
  if (event) event.preventDefault();
  apiKey = $("key").value.trim() || apiKey;
  localStorage.setItem("pgen-key", apiKey);
  try {
    await Promise.all([loadUsers(), loadStrategies()]);
  } catch (error) {
    status(error.message, true);
  }
}

$("connect").addEventListener("submit", connect);
$("users").addEventListener("change", (e) => showUser(e.target.value).catch((err) => status(err.message, true)));
$("ask").addEventListener("submit", ask);
$("answers").addEventListener("click", thumbs);
$("delete").addEventListener("click", deleteUser);
$("upload-records").addEventListener("submit", uploadRecords);
$("upload-photo").addEventListener("submit", uploadPhoto);
if (apiKey) connect();
