"""``pgen train``: a user's text adapter (``lora``, ``task-lora``, ``dpo``) through
``Engine.train``. Torch loads inside the handler: ``pgen --help`` stays fast."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from pgen.cli.options import positive
from pgen.config import Config, settings_from


def _lora_settings(args: argparse.Namespace) -> Any:
    from pgen.training.text_lora import LoraSettings

    modules = tuple(args.target_modules.split(","))
    return settings_from(LoraSettings, args, target_modules=modules, learning_rate=args.lr)


def _settings(args: argparse.Namespace, method: str) -> Any:
    lora = _lora_settings(args)
    if method != "dpo":
        return lora
    from pgen.training.dpo import DpoSettings

    # --cohort names users (Engine.train pools them), not the settings' resolved cohort.
    lora = replace(lora, task=None, from_task=False)
    return settings_from(DpoSettings, args, learning_rate=args.lr, lora=lora, cohort=())


def cmd_train(args: argparse.Namespace, config: Config) -> int | None:
    from pgen.engine import Engine
    from pgen.training.cohorts import similar_k
    from pgen.training.registry import TrainRequest

    if args.stale:
        _retrain_stale(args, config)
        return None
    if args.users is not None:
        return _train_users(args, config)
    if args.user is None:
        raise ValueError(
            "name the user (--user U), many users (--users all|FILE), or retrain every "
            "stale adapter (--stale)"
        )
    args.method = args.method or "lora"
    cohort = tuple(u.strip() for u in (args.cohort or "").split(",") if u.strip())
    similar_k(cohort)  # a bad similar:K fails here, before any model loads
    settings = _settings(args, args.method)
    request = TrainRequest(args.user, args.method, cohort=cohort, settings=settings)
    with Engine.open(config) as engine:
        result = engine.train(request)
    _report(args.user, args.method, result)
    return None


def fan_out_runner(text: str, config: Config, batch_users: int = 1) -> Any:
    """``--runner``: inline, threads:N, ray or ray:ADDRESS (a running cluster's)."""
    from functools import partial

    from pgen.engine import Engine
    from pgen.run.fanout import LocalFanOut
    from pgen.run.ray_runner import RayRunner, parse_runner

    kind, rest = parse_runner(text)
    if kind == "ray":
        # Each Ray task opens the engine from these settings (the store must be reachable
        # from every worker: a SQLite file on a shared disk, or a database URL).
        opener = partial(Engine.open, config)
        return RayRunner(opener, rest, num_cpus=config.torch_threads, group_size=batch_users)
    return LocalFanOut(int(rest or 1), batch_users)


def _users(spec: str, engine: Any) -> list[str]:
    if spec == "all":
        return [summary.user_id for summary in engine.store.users(0, None)]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--users {spec}: neither 'all' nor a file of user ids (one a line)")
    users = [line.strip() for line in path.read_text().splitlines()]
    return [u for u in users if u and not u.startswith("#")]


def _train_users(args: argparse.Namespace, config: Config) -> int:
    """``--users all|FILE``: each user trained on ``--runner`` or reported; fresh skipped."""
    from pgen.engine import Engine
    from pgen.training.registry import TrainRequest

    if args.user is not None or args.cohort:
        raise ValueError("--users trains each user on their own data: no --user or --cohort")
    method = args.method or "lora"
    if method not in ("lora", "dpo"):
        raise ValueError(f"--users trains lora or dpo adapters, not {method}")
    runner = fan_out_runner(args.runner, config, args.batch_users)
    with Engine.open(config) as engine:
        settings = _settings(args, method)
        requests = [TrainRequest(u, method, settings=settings) for u in _users(args.users, engine)]
        done = engine.fan_out(
            requests, runner, retries=args.retries, progress=lambda p: print(p.line(), flush=True)
        )
    for result in done.results:
        print(f"trained {method} for user {result.user_id!r} in {result.seconds:.1f} s")
    for user, error in done.failed.items():
        print(f"failed: user {user!r}: {error}")
    print(
        f"{len(done.results)} trained, {len(done.failed)} failed, "
        f"{len(done.skipped)} fresh (skipped) of {len(requests)} users"
    )
    return 1 if done.failed else 0


def _retrain_stale(args: argparse.Namespace, config: Config) -> None:
    """Every user whose lora / dpo adapter (``--method``: of that kind) is stale, retrained."""
    from pgen.engine import Engine
    from pgen.training.registry import TrainRequest

    if args.user is not None or args.cohort:
        raise ValueError("--stale retrains every stale adapter: it takes no --user or --cohort")
    with Engine.open(config) as engine:
        stale = engine.stale_adapters(None if args.method is None else [args.method])
        for found in stale:
            print(f"user {found.user_id!r}: {found.method} adapter stale ({found.reason})")
        requests = [
            TrainRequest(found.user_id, found.method, settings=_settings(args, found.method))
            for found in stale
        ]
        results = engine.train_many(requests, batch_users=args.batch_users, progress=_progress)
        for found, result in zip(stale, results, strict=True):
            _report(found.user_id, found.method, result)
    print(f"retrained {len(stale)} stale adapters")


def _progress(at: Any) -> None:
    """One line per gathered step: users done, in the batch, queued, and the ETA."""
    eta = "" if at.eta_seconds is None else f", about {at.eta_seconds:.0f} s left"
    print(f"users done {at.done}, in the batch {at.in_batch}, queued {at.queued}{eta}", flush=True)


def _report(user: str, method: str, result: Any) -> None:
    meta = result.meta
    print(f"trained {method} for user {user!r} in {result.seconds:.1f} s")
    if method == "dpo":
        if meta.get("cohort_by") == "similar":
            near = ", ".join(f"{u} ({s:.2f})" for u, s in meta["cohort_similarity"].items())
            print(
                f"pooled {meta['cohort_pairs']} pairs of the {len(meta['cohort'])} most similar "
                f"profiles (cosine, {meta['cohort_space']}): {near}"
            )
        elif meta.get("cohort"):
            print(f"pooled {meta['cohort_pairs']} pairs of the cohort: {', '.join(meta['cohort'])}")
        before, after = meta.get("before", {}), meta.get("after", {})
        print(
            f"preference accuracy on {meta.get('measured_on')}: "
            f"{before.get('accuracy', 0):.2f} -> {after.get('accuracy', 0):.2f} "
            f"(mean implicit reward margin {before.get('margin', 0):.3f} -> "
            f"{after.get('margin', 0):.3f})"
        )
    elif "examples" in meta:
        print(f"{meta['examples']} examples, {meta.get('steps')} steps")
    effect = meta.get("effect", {})
    if "loss_before" in effect:
        print(
            f"loss on {effect['documents']} {effect['loss_on']}: "
            f"{effect['loss_before']:.3f} without the adapter -> {effect['loss_after']:.3f} with it"
        )
    if "probes_changed" in effect:
        print(
            f"greedy replies changed on {effect['probes_changed']:.0%} of "
            f"{effect['probes']} probe prompts"
        )
    print(f"artifact: {result.artifact}")


def cmd_bench_prefs(args: argparse.Namespace, config: Config) -> None:
    from pgen.bench.prefs import PrefsSettings, report, run_prefs
    from pgen.bench.training import BenchTraining
    from pgen.factory import build_embedder, build_text_model
    from pgen.training.dpo import DpoSettings

    settings = PrefsSettings(
        users=args.users,
        train_pairs=args.train_pairs,
        test_pairs=args.test_pairs,
        cohort=args.cohort_size,
        max_prompt_chars=args.max_prompt_chars,
        seed=args.seed,
        dpo=DpoSettings(epochs=args.epochs, beta=args.beta, learning_rate=args.lr or 2e-4),
    )
    # A Ray task opens the model from these settings; the store is the bench's scratch one.
    training = BenchTraining(args.runner, args.batch_users, config)
    training.check()  # a bad --runner fails before any model loads
    config.apply_threads()
    model = build_text_model(config)
    embedder = build_embedder(config) if args.similarity == "embedder" else None
    result = run_prefs(model, args.data, settings, embedder, training)
    print(report(result, f"{args.data.name}, {model.name}"))
    if args.out:
        args.out.write_text(json.dumps({"settings": repr(settings), **result}, indent=1))
        print(f"per-pair results: {args.out}")


def register(commands: Any, bench: Any) -> None:
    import pgen.personalize  # noqa: F401  (registers the trainers)
    from pgen.bench.training import BATCH_USERS_HELP, RUNNER_HELP
    from pgen.training.registry import trainer_methods

    p = bench.add_parser("prefs", help="per-user vs cohort vs global DPO on preference pairs")
    p.add_argument(
        "--data", type=Path, required=True, help="TL;DR comparisons JSONL or P-SOUPS JSON"
    )
    p.add_argument("--users", type=int, default=4, help="the users with the most pairs")
    p.add_argument("--train-pairs", type=int, default=12, help="per user, at most")
    p.add_argument("--test-pairs", type=int, default=8, help="per user")
    p.add_argument("--cohort-size", type=int, default=1, help="other users pooled for cohort")
    p.add_argument(
        "--similarity",
        choices=("embedder", "tfidf"),
        default="embedder",
        help="cohort-similar's space: the configured embedder or TF-IDF",
    )
    p.add_argument(
        "--max-prompt-chars", type=positive, default=1200, help="cut longer prompts (TL;DR posts)"
    )
    p.add_argument("--epochs", type=positive, default=2, help="DPO epochs per user")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (KL strength)")
    p.add_argument("--lr", type=float, help="learning rate (default: 2e-4)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--out", type=Path, help="write the per-pair results as JSON")
    p.add_argument("--runner", default="inline", help=RUNNER_HELP)
    p.add_argument("--batch-users", type=positive, default=1, help=BATCH_USERS_HELP)
    p.set_defaults(func=cmd_bench_prefs)

    p = commands.add_parser("train", help="train a user's text adapter: lora, task-lora, dpo")
    p.add_argument("--user", help="whose adapter (or --users, --stale)")
    p.add_argument(
        "--users",
        help="many users: 'all' or a file of user ids (one a line); fresh adapters skipped",
    )
    p.add_argument(
        "--runner",
        default="inline",
        help="where --users train: inline, threads:N, ray (a local Ray) or ray:ADDRESS",
    )
    p.add_argument("--retries", type=int, default=2, help="--users: tries again for a failing user")
    p.add_argument(
        "--stale",
        action="store_true",
        help="retrain every user whose lora or dpo adapter is stale (--method: only that kind)",
    )
    p.add_argument(
        "--method", choices=trainer_methods("text"), help="what to train (default: lora)"
    )
    p.add_argument("--task", help="example template (LaMP_2, amazon_rating...; default: plain)")
    p.add_argument("--from-task", action="store_true", help="start from the task-lora adapter")
    p.add_argument(
        "--cohort",
        help="comma-separated users: task-lora trains over them, dpo pools their pairs; "
        "dpo also takes similar:K (the K users with the most similar profiles)",
    )
    p.add_argument("--rank", type=positive, default=8, help="LoRA rank r")
    p.add_argument("--alpha", type=positive, default=8, help="LoRA alpha")
    p.add_argument(
        "--target-modules", default="q_proj,v_proj", help="comma-separated modules to adapt"
    )
    p.add_argument("--epochs", type=int, help="default: 2 for lora, 3 for dpo")
    p.add_argument("--lr", type=float, help="learning rate (default: 3e-3 for lora, 2e-4 for dpo)")
    p.add_argument("--batch-size", type=positive, default=4, help="examples per step")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--beta", type=float, default=0.1, help="DPO's beta")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument(
        "--batch-users",
        type=positive,
        default=16,
        help="many users' lora/dpo: this many trained at once, gathered (1: each alone)",
    )
    p.set_defaults(func=cmd_train, reads_store=True)
