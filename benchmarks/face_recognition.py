"""Recognizing a user's people in their photos, on real faces: precision and recall of
"photos of person P" at the per-person calibrated decision (``usermodel/faces.py``) against
one global cosine threshold, both fit on other people, with 95% intervals.

    .venv/bin/python benchmarks/face_recognition.py --deepface DIR --face-recognition DIR

The photos are read at run time from two public MIT-licensed repositories (never copied
into pgen): ``DIR`` of deepface is its ``tests/unit/dataset`` (identities: the connected
"Yes" pairs of ``master.csv``), of face_recognition its ``examples`` and ``tests`` folders
(identities from file and folder names; three group photos labelled by hand below). The
repositories' licence is MIT; the photos are press and web photos of public figures whose
own licences the repositories do not state, which is why pgen reads and never ships them.

Protocol: the people with two photos or more are split into ``--folds`` folds, several
times over (``--repeats``). Each fold is one user: its people are the user's named person
subjects (``--references`` reference photos each, the largest face of each), and every
other photo of the pool is among the user's photos (the rest of that person's photos, the
other people's, group photos, a one-photo distractor). For each (photo, person) pair the
score is the person's best face in the photo. ``alpha`` (calibrated) and the global
threshold are fit (best F1) on the other folds' pairs and applied to the held-out fold.
Intervals: a bootstrap over people (each person with all their pairs).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import pickle
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pgen.models.face import DlibFaceEmbedder, Face
from pgen.usermodel.concepts import fit_alpha, fit_global_threshold
from pgen.usermodel.faces import FACE_CALIBRATION, SAME_PERSON, FaceMemory

# face_recognition's photos: path -> the people in it (every other face is nobody named).
FACE_RECOGNITION = {
    "examples/knn_examples/train/obama/obama.jpg": ["obama"],
    "examples/knn_examples/train/obama/obama2.jpg": ["obama"],
    "examples/knn_examples/test/obama1.jpg": ["obama"],
    "tests/test_images/obama.jpg": ["obama"],
    "tests/test_images/obama2.jpg": ["obama"],
    "tests/test_images/obama3.jpg": ["obama"],
    "examples/knn_examples/train/biden/biden.jpg": ["biden"],
    "examples/knn_examples/train/biden/biden2.jpg": ["biden"],
    "tests/test_images/biden.jpg": ["biden"],
    "examples/knn_examples/train/alex_lacamoire/img1.jpg": ["alex_lacamoire"],
    "examples/knn_examples/test/alex_lacamoire1.jpg": ["alex_lacamoire"],
    "examples/alex-lacamoire.png": ["alex_lacamoire"],
    "examples/knn_examples/train/kit_harington/john1.jpeg": ["kit_harington"],
    "examples/knn_examples/train/kit_harington/john2.jpeg": ["kit_harington"],
    "examples/knn_examples/test/johnsnow_test1.jpg": ["kit_harington"],
    "examples/knn_examples/train/rose_leslie/img1.jpg": ["rose_leslie"],
    "examples/knn_examples/train/rose_leslie/img2.jpg": ["rose_leslie"],
    "examples/lin-manuel-miranda.png": ["lin_manuel_miranda"],
    "examples/knn_examples/test/kit_with_rose.jpg": ["kit_harington", "rose_leslie"],
    "examples/knn_examples/test/obama_and_biden.jpg": ["obama", "biden"],
    "examples/two_people.jpg": ["obama", "biden"],
}


def deepface_photos(folder: Path) -> dict[str, list[str]]:
    """Each labelled photo of deepface's test set -> [its person] (ids: connected pairs)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    with (folder / "master.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            a, b = find(row["file_x"]), find(row["file_y"])
            if row["Decision"] == "Yes":
                parent[a] = b
    return {str(folder / name): [f"deepface-{find(name)}"] for name in parent}


def pool(deepface: Path | None, face_recognition: Path | None) -> dict[str, list[str]]:
    photos: dict[str, list[str]] = {}
    if deepface is not None:
        photos.update(deepface_photos(deepface))
    if face_recognition is not None:
        for rel, people in FACE_RECOGNITION.items():
            if (face_recognition / rel).is_file():
                photos[str(face_recognition / rel)] = people
    seen: dict[str, str] = {}
    for path in list(photos):  # the same file in two folders counts once
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if digest in seen:
            del photos[path]
        seen[digest] = path
    return photos


def embed(photos: dict[str, list[str]], embedder: DlibFaceEmbedder) -> dict[str, list[Face]]:
    faces = {}
    start = time.perf_counter()
    for path in photos:
        with Image.open(path) as image:
            faces[path] = embedder.faces(image.convert("RGB"))
    seconds = time.perf_counter() - start
    print(f"[{len(photos)} photos, {sum(map(len, faces.values()))} faces, {seconds:.1f} s]")
    return faces


def fold_pairs(
    people: list[str],
    refs: dict[str, list[str]],
    photos: dict[str, list[str]],
    faces: dict[str, list[Face]],
    negative_pool: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One user (these people): (calibrated conf, raw cosine, label, person index) per
    (photo, person) pair, over every photo that is not one of their references."""
    entries = [(p, refs[p], np.stack([faces[r][0].vector for r in refs[p]])) for p in people]
    memory = FaceMemory.build(entries, FACE_CALIBRATION, negative_pool)
    held = {r for p in people for r in refs[p]}
    conf, raw, label, who = [], [], [], []
    for path, in_photo in photos.items():
        if path in held:
            continue
        found = faces[path]
        confidence = memory.photo_confidence(found)
        cosine = memory.scores(found).max(axis=0) if found else np.full(len(people), -np.inf)
        for j, person in enumerate(people):
            conf.append(confidence[j])
            raw.append(cosine[j])
            label.append(person in in_photo)
            who.append(person)
    return np.array(conf), np.array(raw), np.array(label), np.array(who), people


def counts(decided: np.ndarray, labels: np.ndarray, who: np.ndarray) -> dict[str, np.ndarray]:
    """Per person: true positives, predicted positives, actual positives."""
    out: dict[str, np.ndarray] = {}
    for person in np.unique(who):
        m = who == person
        d, y = decided[m], labels[m]
        out[person] = np.array([np.sum(d & y), np.sum(d), np.sum(y)], dtype=np.float64)
    return out


def interval(per_person: list[dict[str, np.ndarray]], seed: int = 0) -> dict[str, tuple]:
    """Precision and recall pooled over repeats, 95% bootstrap over people."""
    people = sorted({p for run in per_person for p in run})
    rows = np.stack([sum(run.get(p, np.zeros(3)) for run in per_person) for p in people])

    def pr(r: np.ndarray) -> tuple[float, float]:
        tp, pred, pos = r.sum(axis=0)
        return tp / max(pred, 1), tp / max(pos, 1)

    rng = np.random.default_rng(seed)
    draws = [pr(rows[rng.integers(0, len(rows), len(rows))]) for _ in range(2000)]
    low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    value = pr(rows)
    return {
        "precision": (value[0], low[0], high[0]),
        "recall": (value[1], low[1], high[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deepface", type=Path, help="deepface's tests/unit/dataset folder")
    parser.add_argument("--face-recognition", type=Path, help="face_recognition's repo root")
    parser.add_argument("--references", type=int, default=1, help="reference photos a person")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--detector", default="hog", choices=["hog", "cnn"])
    parser.add_argument(
        "--pool",
        action="store_true",
        help="also give each user an operator negative pool: the other folds' reference faces",
    )
    parser.add_argument("--cache", type=Path, help="pickle of the faces found (reruns skip dlib)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = pool(args.deepface, args.face_recognition)
    if not photos:
        raise SystemExit("no photos: give --deepface and/or --face-recognition")
    if args.cache is not None and args.cache.is_file():
        faces = pickle.loads(args.cache.read_bytes())
    else:
        faces = embed(photos, DlibFaceEmbedder(args.detector))
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps(faces))
    by_person: dict[str, list[str]] = defaultdict(list)
    for path, people in photos.items():
        if len(people) == 1 and faces[path]:  # references: single-person photos with a face
            by_person[people[0]].append(path)
    named = sorted(p for p, paths in by_person.items() if len(paths) > args.references)
    missed = [p for p, f in faces.items() if not f]
    print(f"[{len(named)} people with a reference and a photo left; no face found in {missed}]")
    calibrated: list[dict[str, np.ndarray]] = []
    default: list[dict[str, np.ndarray]] = []
    global_: list[dict[str, np.ndarray]] = []
    alphas, thresholds, flagged, checked, pairs, positives = [], [], 0, 0, 0, 0
    for repeat in range(args.repeats):
        rng = np.random.default_rng(repeat)
        order = list(rng.permutation(named))
        refs = {
            p: sorted(by_person[p], key=lambda _: rng.random())[: args.references] for p in named
        }
        for p in named:  # the reference check: would a second reference be refused?
            others = [q for q in by_person[p] if q not in refs[p]]
            if others:
                checked += 1
                flagged += float(faces[refs[p][0]][0].vector @ faces[others[0]][0].vector) < (
                    SAME_PERSON
                )
        folds = [order[k :: args.folds] for k in range(args.folds)]
        users = []
        for k, fold in enumerate(folds):
            others = [
                faces[r][0].vector
                for i, f in enumerate(folds)
                if i != k
                for p in f
                for r in refs[p]
            ]
            negatives = np.stack(others) if args.pool else None
            users.append(fold_pairs(fold, refs, photos, faces, negatives))
        for k, (conf, raw, label, who, _) in enumerate(users):
            train = [u for i, u in enumerate(users) if i != k]
            alpha = fit_alpha(
                np.concatenate([u[0] for u in train]), np.concatenate([u[2] for u in train])
            )
            cut = fit_global_threshold(
                np.concatenate([u[1] for u in train]), np.concatenate([u[2] for u in train])
            )
            if repeat == 0:
                pairs, positives = pairs + len(label), positives + int(label.sum())
            alphas.append(alpha)
            thresholds.append(cut)
            calibrated.append(counts(conf >= alpha, label, who))
            default.append(counts(conf >= FACE_CALIBRATION.alpha, label, who))
            global_.append(counts(raw >= cut, label, who))
    print(
        f"\nmachine: {args.threads} thread(s); dlib {args.detector}; {args.references} "
        f"reference(s) a person; {args.folds} folds x {args.repeats} repeats; negative pool: "
        f"{'the other folds' if args.pool else 'none'}; {pairs} (photo, person) pairs a "
        f"repeat, {positives} of them the person in the photo\n"
    )
    print("| decision | precision [95% CI] | recall [95% CI] |\n| --- | --- | --- |")
    for name, runs in (
        (f"calibrated, alpha fit on other folds (mean {np.mean(alphas):.2f})", calibrated),
        (f"calibrated, built-in alpha {FACE_CALIBRATION.alpha}", default),
        (f"global cosine, fit on other folds (mean {np.mean(thresholds):.3f})", global_),
    ):
        cells = interval(runs)
        shown = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in cells.values()]
        print(f"| {name} | {shown[0]} | {shown[1]} |")
    firsts = [faces[by_person[p][0]][0].vector for p in named]
    mixed = [
        float(firsts[i] @ firsts[j]) for i in range(len(named)) for j in range(i + 1, len(named))
    ]
    passed = sum(c >= SAME_PERSON for c in mixed)
    print(
        f"\nreference check (cosine < {SAME_PERSON} = two people): {flagged:.0f} of {checked} "
        f"same-person pairs refused; {passed} of {len(mixed)} two-person pairs let through"
    )


if __name__ == "__main__":
    main()
