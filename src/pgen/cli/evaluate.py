"""``pgen bench text`` (run a text personalization benchmark) and ``pgen eval`` (score files)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen.config import Config

if TYPE_CHECKING:
    from pgen.evaluate.metrics.bertscore import BertScorer
    from pgen.models.base import TextModel


def _list(kind: type) -> Any:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list, got {text!r}"
            ) from None

    return parse


def _bertscore_options(parser: Any) -> None:
    from pgen.evaluate.metrics.bertscore import DEFAULT_LAYER

    parser.add_argument("--bertscore", action="store_true", help="add BERTScore F1")
    parser.add_argument(
        "--bertscore-model",
        type=Path,
        help="BERTScore encoder folder (default: bundled all-MiniLM-L6-v2); implies --bertscore",
    )
    parser.add_argument(
        "--bertscore-layer",
        type=int,
        help=f"the encoder layer BERTScore reads (default {DEFAULT_LAYER}); implies --bertscore",
    )


def _decoding_options(parser: Any) -> None:
    """Decoding flags of ``bench text``. Their defaults are GenerationSettings's (plain
    greedy), not the configured ones of ``pgen generate``: scores stay comparable with
    published greedy results unless a run asks otherwise, and each run records its own."""
    parser.add_argument(
        "--repetition-penalty", type=float, default=1.0, help="1.0 is off (greedy stays greedy)"
    )
    parser.add_argument(
        "--no-repeat-ngram-size", type=int, default=0, help="forbid repeating n-grams (0: off)"
    )
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="0 is greedy; > 0 samples (seeded)"
    )
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass when sampling")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def _adapter_options(parser: Any) -> None:
    """Caps on per-user training for lora, lora+rag and dpo (CPU cost); keyed and recorded.
    Where it runs, recorded only: the runner changes no adapter."""
    from pgen.bench.text_adapter_runs import AdapterCaps
    from pgen.bench.training import BATCH_USERS_HELP, RUNNER_HELP

    caps = AdapterCaps()
    parser.add_argument(
        "--profile-items",
        type=int,
        default=caps.profile_items,
        help="adapters train on the user's N most recent profile documents",
    )
    parser.add_argument(
        "--train-max-length", type=int, default=caps.max_length, help="tokens per example"
    )
    parser.add_argument("--train-epochs", type=int, default=caps.epochs, help="adapter epochs")
    parser.add_argument(
        "--train-lr", type=float, default=caps.learning_rate, help="adapter learning rate"
    )
    parser.add_argument("--runner", default="inline", help=RUNNER_HELP)
    parser.add_argument("--batch-users", type=int, default=1, help=BATCH_USERS_HELP)


def adapter_caps(args: argparse.Namespace) -> Any:
    from pgen.bench.text_adapter_runs import AdapterCaps

    if args.profile_items < 1 or args.train_max_length < 8 or args.train_epochs < 1:
        raise ValueError("--profile-items and --train-epochs must be >= 1, --train-max-length >= 8")
    return AdapterCaps(
        profile_items=args.profile_items,
        max_length=args.train_max_length,
        epochs=args.train_epochs,
        learning_rate=args.train_lr,
    )


def bertscorer(args: argparse.Namespace) -> BertScorer | None:
    """The BERTScore the options ask for, or None."""
    if not (args.bertscore or args.bertscore_model or args.bertscore_layer is not None):
        return None
    from pgen.evaluate.metrics.bertscore import DEFAULT_LAYER, BertScorer

    layer = DEFAULT_LAYER if args.bertscore_layer is None else args.bertscore_layer
    return BertScorer(args.bertscore_model, layer)


def text_model_loader(spec: str, config: Config, batch_size: int) -> Callable[[], TextModel]:
    """Loads the text model to run in batches of ``batch_size`` (its own default is 8,
    which would cap every larger --batch-size)."""
    from pgen.models.text import TransformersTextModel, load_text_model

    def load() -> TextModel:
        model = load_text_model(spec, config)
        if isinstance(model, TransformersTextModel):
            model.batch_size = batch_size
        return model

    return load


def register(commands: Any, bench: Any) -> None:
    from pgen.evaluate.answers import ANSWER_MODES
    from pgen.evaluate.benchmarks import TEXT_TASKS

    text = bench.add_parser(
        "text",
        help="personalized text: strategies x retrievers x k on LaMP, LongLaMP or Amazon reviews",
        description="Runs every setting with greedy decoding (unless the decoding flags say "
        "otherwise; every result records them); writes predictions, metrics.json "
        "(95% CIs, paired tests against none), report.md and report.png. Resumes when rerun; "
        "a non-raw --answers mode writes its files beside the raw ones (report.first-label.md).",
    )
    text.add_argument("--task", required=True, choices=TEXT_TASKS, help="the benchmark task")
    text.add_argument("--data", required=True, type=Path, help="data file or folder")
    text.add_argument("--split", default="dev", help="LaMP split when --data is a folder")
    text.add_argument(
        "--longlamp-setting",
        choices=("user", "temporal"),
        help="LongLaMP setting, when the file or folder names do not say",
    )
    text.add_argument(
        "--strategy",
        type=_list(str),
        default=["none", "rag", "profile"],
        help="comma-separated text strategies (none is always run as the baseline)",
    )
    text.add_argument(
        "--retriever", type=_list(str), default=["bm25"], help="comma-separated, for rag"
    )
    text.add_argument(
        "--k", type=_list(int), default=[1, 4], help="comma-separated documents retrieved"
    )
    text.add_argument("--model", help="text model (default: the configured one)")
    text.add_argument("--out", type=Path, help="run folder (default: pgen-runs/<task>)")
    text.add_argument("--limit", type=int, help="at most this many questions")
    text.add_argument("--users", type=int, help="at most this many users")
    text.add_argument(
        "--largest-profiles",
        action="store_true",
        help="take questions with the largest profiles first (ties by id) before --users/--limit",
    )
    text.add_argument("--max-new-tokens", type=int, help="default: the task's own")
    text.add_argument("--prompt-tokens", type=int, default=1024, help="prompt cap in tokens")
    text.add_argument("--batch-size", type=int, default=8, help="requests per model call")
    _decoding_options(text)
    _bertscore_options(text)
    text.add_argument(
        "--answers",
        choices=ANSWER_MODES,
        default="raw",
        help="raw: score the text as generated (LaMP's rule); first-label: score the first "
        "label found in it; choice: the label the model finds most likely as its reply, "
        "nothing generated; choice-calibrated: the same after batch calibration of the "
        "label prior (label tasks only; all reported as such)",
    )
    _adapter_options(text)
    text.add_argument("--no-progress", action="store_true", help="no progress bars")
    text.set_defaults(func=cmd_bench_text)

    score = commands.add_parser(
        "eval",
        help="score a predictions file against golds the way LaMP's evaluator does",
        description="Both files in LaMP's format {task, golds: [{id, output}]}; ids must match.",
    )
    score.add_argument("--task", required=True, choices=TEXT_TASKS, help="the task scored")
    score.add_argument("--golds", required=True, type=Path, help="LaMP outputs file of golds")
    score.add_argument("--preds", required=True, type=Path, help="predictions, LaMP format")
    _bertscore_options(score)
    score.add_argument("--json", action="store_true", help="print the JSON only")
    score.set_defaults(func=cmd_eval)


def cmd_bench_text(args: argparse.Namespace, config: Config) -> int:
    from pgen.bench.text import BenchPlan, bench_text, output_names, settings_grid
    from pgen.bench.text_plan import BASELINE, store_path
    from pgen.bench.training import BenchTraining
    from pgen.engine import Engine
    from pgen.evaluate.benchmarks import load_task, metrics_for, select
    from pgen.factory import build_embedder, build_store
    from pgen.personalize import get_strategy
    from pgen.usermodel.retrievers import RETRIEVERS

    for strategy in args.strategy:
        get_strategy("text", strategy)  # an unknown name fails here, with the choices
    for retriever in args.retriever:
        if retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {retriever!r}; known: {', '.join(RETRIEVERS)}")
    if any(k < 1 for k in args.k):
        raise ValueError("--k values must be at least 1")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    data = load_task(args.task, args.data, args.split, args.longlamp_setting)
    if args.largest_profiles:  # deterministic: profile size, then question id
        data.examples = sorted(data.examples, key=lambda e: (-len(e.profile), e.id))
    data.examples = select(data.examples, args.users, args.limit)
    if not data.examples:
        raise ValueError(f"{args.data}: no questions to run (after --users/--limit)")
    model = args.model or config.text_model
    if not isinstance(model, str) or not isinstance(config.embed_model, str):
        raise ValueError("bench text names its models by id or path (--model), not a table")
    run_dir = args.out or Path("pgen-runs") / args.task
    # A Ray task opens the run's store (by its absolute path: a worker has its own working
    # folder) and the bench's model from these settings.
    store = store_path(run_dir.absolute(), data.data_hash)
    training = BenchTraining(
        args.runner, args.batch_users, replace(config, store=store, text_model=model)
    )
    training.check()
    plan = BenchPlan(
        settings=settings_grid(args.strategy, args.retriever, args.k),
        model=model,
        max_new_tokens=args.max_new_tokens or data.spec.max_new_tokens,
        prompt_tokens=args.prompt_tokens,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        answers=args.answers,
        embed_model=config.embed_model,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        adapter_caps=adapter_caps(args),
        run_dir=run_dir,
        training=training,
        extra={
            "limit": args.limit,
            "users": args.users,
            "largest_profiles": args.largest_profiles,
            "baseline_added": BASELINE not in args.strategy,
            "bertscore": None,
        },
    )
    plan.generation()  # bad decoding values fail here, before any model loads
    metrics = metrics_for(data.spec)
    scorer = bertscorer(args)
    if scorer is not None:
        metrics.append(scorer.metric())
        plan.extra["bertscore"] = scorer.settings()
    run_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(
        build_store(replace(config, store=store)),
        text_model_loader(model, config, args.batch_size),
        lambda: build_embedder(config),
        prompt_tokens=args.prompt_tokens,
    )
    try:
        bench_text(engine, data, plan, run_dir, metrics)
    finally:
        engine.close()
    names = output_names(args.answers)
    print((run_dir / names["report"]).read_text())
    print(
        f"results in {run_dir}/ ({names['metrics']}, {names['report']}, {names['plot']}, "
        f"predictions/{names['predictions'].format(setting='<setting>')})"
    )
    return 0


def cmd_eval(args: argparse.Namespace, config: Config) -> int:
    from pgen.evaluate.scorefiles import score_files

    results = score_files(args.task, args.golds, args.preds, bertscorer(args))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{args.task}: {results['examples']} predictions scored")
    for name, estimate in results["metrics"].items():
        interval = f"[{estimate['low']:.4f}, {estimate['high']:.4f}]"
        print(f"  {name:<10} {estimate['value']:.4f}  95% CI {interval}")
    for name, value in results.get("lamp_rouge", {}).items():
        print(f"  {name:<10} {value:.4f}  (LaMP's own aggregate: bootstrap median, seed 0)")
    return 0
