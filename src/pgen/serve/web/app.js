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
  if (body !== undefined) {
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

async function showUser(userId) {
  current = userId;
  const view = await api("GET", `/users/${encodeURIComponent(userId)}?limit=50`);
  $("who").textContent = `· ${userId}`;
  $("profile").textContent = `Profile: ${JSON.stringify(view.user.profile)}`;
  const docs = $("documents");
  docs.replaceChildren();
  for (const doc of view.documents) {
    const li = item(docs, "");
    li.dataset.docId = doc.doc_id;
    const id = document.createElement("span");
    id.className = "doc-id";
    id.textContent = doc.doc_id;
    li.append(id, document.createTextNode(doc.text));
  }
  const subjects = $("subjects");
  subjects.replaceChildren();
  for (const subject of view.subjects) item(subjects, `${subject.name} (${subject.class_word})`);
  $("counts").textContent =
    `${view.total_documents} documents, ${view.interactions} interactions, ` +
    `${view.feedback} feedback`;
  await loadOutputs();
  $("generate").disabled = false;
  $("delete").disabled = false;
}

async function loadOutputs() {
  const outputs = await api("GET", `/users/${encodeURIComponent(current)}/outputs`);
  const list = $("outputs");
  list.replaceChildren();
  $("outputs-count").textContent = `(${outputs.length}, newest first)`;
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
  for (const button of panel.querySelectorAll(".thumbs button")) button.disabled = false;
}

async function ask(event) {
  event.preventDefault();
  const instruction = $("instruction").value.trim();
  if (!instruction || !current) return;
  const strategy = $("strategy").value || "rag";
  status("generating…");
  $("generate").disabled = true;
  try {
    const data = await api("POST", `/users/${encodeURIComponent(current)}/compare`, {
      instruction, strategies: ["none", strategy],
    });
    const [baseline, personalized] = data.results;
    showAnswer($("baseline"), baseline);
    $("personalized").querySelector(".strategy").textContent = strategy;
    showAnswer($("personalized"), personalized);
    const used = new Set(personalized.provenance.documents);
    for (const li of $("documents").children) li.classList.toggle("used", used.has(li.dataset.docId));
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
    status(`feedback recorded (${button.dataset.thumbs === "1" ? "up" : "down"})`);
  } catch (error) {
    status(error.message, true);
  }
}

async function deleteUser() {
  if (!current) return;
  if (!confirm(`Delete user ${current} and everything derived from them?`)) return;
  try {
    const deleted = current;
    await api("DELETE", `/users/${encodeURIComponent(deleted)}`);
    current = null;
    for (const id of ["documents", "subjects", "outputs"]) $(id).replaceChildren();
    $("who").textContent = "";
    $("delete").disabled = $("generate").disabled = true;
    await loadUsers();
    status(`deleted ${deleted}`);
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
if (apiKey) connect();
