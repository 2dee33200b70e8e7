"""The paper's long-context benchmarks, offline: S-NIAH, OOLONG-style and OOLONG-Pairs-style on a deterministic oracle.

Each input is generated (seeded, streaming; tokens approximated as bytes / 4)
and solved three ways against one loopback server whose model is
``longcontext.oracle.Oracle``: our generic task (``rlm/tasks/generic.py``:
find_answer, count_by_label, find_pairs), the whole context in one call, and
regex only. For our task the row shows the dry run's worst case, the budget
set from it, the actual spend, and a warm-cache replay ($0, 0 requests).
Prices are pinned to gpt-5-mini ($0.25 / $2.00 per million tokens).

Self-check: with --error-rate 0 our tasks must score exactly 1.0 at every
size, replay for free, and spend no more than the dry run's worst case;
otherwise the script exits 1.

    python benchmarks/longcontext.py                   # S-NIAH 2^13..2^24, OOLONG and pairs 2^13..2^20
    python benchmarks/longcontext.py --quick           # 2^13..2^14 only
    python benchmarks/longcontext.py --error-rate 0.1  # seeded oracle mistakes: scores drop
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import table
from longcontext.baselines import (
    read_whole_context_answer,
    records_regex,
    sniah_regex,
    whole_context,
    whole_context_prompt,
)
from longcontext.generators import GENERATORS, Generated
from longcontext.oracle import DEFAULT_WINDOW_TOKENS, Oracle
from longcontext.pool import TREC_LABELS, instance_labels
from longcontext.questions import DATE_FORMAT, answer_oolong, pair_f1, score_oolong

from rlm.guards import GuardConfig
from rlm.loopback import LoopbackServer
from rlm.runtime import run_task
from rlm.tasks.generic import count_by_label, find_answer, find_pairs

PRICE_IN, PRICE_OUT = 0.25, 2.0  # gpt-5-mini, USD per 1M tokens, pinned
PRICES: dict[str, Any] = {"model": "gpt-5-mini", "price_input_per_mtok": PRICE_IN, "price_output_per_mtok": PRICE_OUT}
WORKERS = 16
RUNTIME_LIMIT = 300.0
WHOLE_CONTEXT_OUTPUT_CAP = 128_000  # GPT-5's output limit: the base model may write a long answer
CLASSIFY = "Each record is a question someone asked. Label it by the kind of answer its question seeks."
FIELDS = {"user": r"User: (\d+)", "date": r"Date: (.+?) \|\|"}
NIAH_MAX_EXP, RECORDS_MAX_EXP = 24, 20


def _budget(worst_usd: float) -> float:
    """A run's budget: its dry run's worst case, rounded up to the cent (it can then never trip)."""
    return max(0.01, math.ceil(worst_usd * 100 - 1e-9) / 100)


class Bench:
    """One server and oracle, and the measurement of each run against it."""

    def __init__(self, server: LoopbackServer, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.caches = 0

    def config(self, **overrides: Any) -> GuardConfig:
        return GuardConfig(**{"max_cost": 1000.0, "max_runtime_seconds": RUNTIME_LIMIT, "max_workers": WORKERS,
                              **PRICES, **overrides})

    def run(self, task: Any, gen: Generated, config: GuardConfig) -> dict[str, Any]:
        self.server.reset()
        start = time.perf_counter()
        result = run_task(task, gen.path, config)
        seconds = time.perf_counter() - start
        requests = len(self.server.chat_requests)
        self.server.reset()  # the server log holds request bodies; whole-context ones are large
        return {**result, "seconds": seconds, "requests": requests}

    def ours(self, task: Any, gen: Generated) -> dict[str, Any]:
        """Dry run, then a cold run under the dry run's worst case as budget, then a warm-cache replay."""
        dry = self.run(task, gen, self.config(dry_run=True))
        worst = dry["budget_summary"]["dry_run"]["worst_case_cost_usd"]
        self.caches += 1
        cache = str(self.workdir / "cache" / f"{self.caches}.sqlite3")
        config = self.config(max_cost=_budget(worst), cache=True, cache_path=cache)
        cold = self.run(task, gen, config)
        warm = self.run(task, gen, config)
        s = cold["budget_summary"]
        problems = []
        if cold["status"] != "completed":
            problems.append(f"status {cold['status']}: {cold['error']}")
        if warm["requests"] or warm["budget_summary"]["total_cost_usd"] or warm["result"] != cold["result"]:
            problems.append("warm replay was not free and identical")
        if s["total_cost_usd"] > worst + 1e-12:
            problems.append("spent more than the dry run's worst case")
        return {"result": cold["result"] if cold["status"] == "completed" else None, "calls": s["total_calls"], "in": s["input_tokens"],
                "out": s["output_tokens"], "cost": s["total_cost_usd"], "worst": worst, "budget": _budget(worst),
                "dry_calls": dry["budget_summary"]["dry_run"]["subcalls"], "seconds": cold["seconds"],
                "warm_requests": warm["requests"], "warm_cost": warm["budget_summary"]["total_cost_usd"],
                "warm_seconds": warm["seconds"], "problems": problems, "inexact": []}

    def whole(self, gen: Generated, benchmark: str, questions: list[str]) -> list[dict[str, Any]]:
        """The whole-context baseline: one call per question, each with the entire input, in one run."""
        prompts = [whole_context_prompt(benchmark, q) for q in questions]
        # The budget is the calls' worst case: every byte a token, plus the whole output cap.
        worst = sum((gen.manifest["bytes"] + len(p) + 1000) * PRICE_IN + WHOLE_CONTEXT_OUTPUT_CAP * PRICE_OUT
                    for p in prompts) / 1e6
        config = self.config(max_cost=_budget(worst * 1.01), max_tokens_per_subcall=1 << 31,
                             max_output_tokens=WHOLE_CONTEXT_OUTPUT_CAP)
        run = self.run(functools.partial(whole_context, prompts=prompts), gen, config)
        s = run["budget_summary"]
        if run["status"] != "completed":
            return [{"answer": None, "refused": False, "ok": False, "error": run["error"], "cost": s["total_cost_usd"],
                     "calls": s["total_calls"]}]
        out = []
        for answer in run["result"]["answers"]:
            error = answer.get("error")
            # Workaround: SubcallError carries neither the HTTP status nor the error code, and its text drops
            # the code, so a refusal for length is recognised by OpenAI's wording of it.
            refused = error is not None and "HTTP 400" in error and "maximum context length" in error
            out.append({"answer": read_whole_context_answer(benchmark, answer.get("raw", "")), "refused": refused,
                        "ok": error is None or refused, "error": error})
        for item in out:  # the run's spend, spread over its calls, so sums over questions stay right
            item["cost"], item["calls"] = s["total_cost_usd"] / len(out), s["total_calls"] / len(out)
        return out

    def regex(self, task: Any, gen: Generated) -> dict[str, Any]:
        run = self.run(task, gen, self.config())
        return {"result": run["result"], "ok": run["status"] == "completed", "error": run["error"],
                "seconds": run["seconds"], "calls": run["budget_summary"]["total_calls"]}


def _records_of(result: dict[str, Any]) -> list[tuple[str, dt.date, str | None]]:
    out = []
    for r in result["records"]:
        user, date = r["fields"]["user"], r["fields"]["date"]
        if user is None or date is None:
            continue
        out.append((user, dt.datetime.strptime(date.strip(), DATE_FORMAT).date(), r["label"]))
    return out


def _match(gold: str, answer: Any) -> float:
    """RULER's string match: the gold value appears in the answer."""
    return 1.0 if answer is not None and gold.lower() in str(answer).lower() else 0.0


def sniah(bench: Bench, gen: Generated, seed: int) -> dict[str, Any]:
    q, gold = gen.gold["question"], gen.gold["answer"]
    ours = bench.ours(functools.partial(find_answer, question=q), gen)
    found = ours["result"] or {"answer": None, "span": None}
    ours["score"] = _match(gold, found["answer"])
    if ours["score"] == 1.0 and found["span"] != gen.gold["needle_span"]:
        ours["problems"].append(f"span {found['span']} is not the needle's {gen.gold['needle_span']}")
    whole = bench.whole(gen, "s-niah", [q])[0]
    whole["score"] = _match(gold, whole["answer"])
    regex = bench.regex(functools.partial(sniah_regex, question=q), gen)
    regex["score"] = _match(gold, regex["result"]["answer"] if regex["ok"] else None)
    return {"ours": ours, "whole": [whole], "regex": regex, "queries": 1}


def oolong(bench: Bench, gen: Generated, seed: int) -> dict[str, Any]:
    questions = gen.gold["questions"]
    task = functools.partial(count_by_label, instruction=CLASSIFY, labels=TREC_LABELS, fields=FIELDS)
    ours = bench.ours(task, gen)
    counted = ours["result"] or {"records": [], "unlabelled": []}
    records = _records_of(counted)
    ours["score"] = sum(score_oolong(q, answer_oolong(q, records, TREC_LABELS)) for q in questions) / len(questions)
    # Checked against the generator's own tallies, so a dropped or doubled record shows even if no question touches it.
    if counted.get("total_records") != gen.gold["records"] or counted.get("counts") != gen.gold["label_counts"]:
        ours["inexact"].append(f"read {counted.get('total_records')} records and counts {counted.get('counts')}, "
                               f"not {gen.gold['records']} and {gen.gold['label_counts']}")
    if counted["unlabelled"]:
        ours["inexact"].append(f"{len(counted['unlabelled'])} records unlabelled")
    wholes = bench.whole(gen, "oolong", [q["text"] for q in questions])
    for q, w in zip(questions, wholes):
        w["score"] = score_oolong(q, w["answer"])
    regex = bench.regex(functools.partial(records_regex, seed=seed), gen)
    guessed = [(u, dt.date.fromisoformat(d), label) for u, d, label in regex["result"]["records"]]
    regex["score"] = sum(score_oolong(q, answer_oolong(q, guessed, TREC_LABELS)) for q in questions) / len(questions)
    return {"ours": ours, "whole": wholes, "regex": regex, "queries": len(questions)}


def pairs(bench: Bench, gen: Generated, seed: int) -> dict[str, Any]:
    from longcontext.questions import pairs_for

    runs = []
    for q in gen.gold["questions"]:
        task = functools.partial(find_pairs, instruction=CLASSIFY, condition=q["grammar"], labels=TREC_LABELS)
        run = bench.ours(task, gen)
        found = run["result"] or {"pairs": [], "users": {}, "total_records": None}
        run["score"] = pair_f1(q["answer"], found["pairs"])
        per_user = {u: v["counts"] for u, v in found["users"].items()}
        if found["total_records"] != gen.gold["records"] or per_user != gen.gold["user_label_counts"]:
            run["inexact"].append(f"read {found['total_records']} records (not {gen.gold['records']}) or per-user "
                                  "label counts that differ from the generator's")
        runs.append(run)
    ours = {key: sum(r[key] for r in runs) for key in ("calls", "in", "out", "cost", "worst", "budget", "dry_calls",
                                                       "seconds", "warm_requests", "warm_cost", "warm_seconds")}
    ours["score"] = sum(r["score"] for r in runs) / len(runs)
    ours["problems"] = [p for r in runs for p in r["problems"]]
    ours["inexact"] = [p for r in runs for p in r["inexact"]]
    wholes = bench.whole(gen, "pairs", [q["text"] for q in gen.gold["questions"]])
    for q, w in zip(gen.gold["questions"], wholes):
        w["score"] = pair_f1(q["answer"], w["answer"] if isinstance(w["answer"], list) else [])
    regex = bench.regex(functools.partial(records_regex, seed=seed), gen)
    users = regex["result"]["users"]
    regex["score"] = sum(pair_f1(q["answer"], pairs_for(q["condition"], users))
                         for q in gen.gold["questions"]) / len(gen.gold["questions"])
    return {"ours": ours, "whole": wholes, "regex": regex, "queries": len(gen.gold["questions"])}


SOLVERS = {"s-niah": sniah, "oolong": oolong, "pairs": pairs}


def _plot(rows: list[dict[str, Any]], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install matplotlib; an optional benchmark dependency)"
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    fig, axes = plt.subplots(2, len(benches), figsize=(5 * len(benches), 7.5), squeeze=False)
    for col, name in enumerate(benches):
        mine = [r for r in rows if r["benchmark"] == name]
        x = [2 ** r["exp"] for r in mine]
        for key, label, style in (("ours", "RLM task", "o-"), ("whole", "whole context", "s--"),
                                  ("regex", "regex only (no model, $0)", "^:")):
            axes[0][col].plot(x, [r[f"{key}_score"] for r in mine], style, label=label, markersize=5)
        answered = [r for r in mine if not r["whole_refused"]]
        refused = [2 ** r["exp"] for r in mine if r["whole_refused"]]
        axes[1][col].plot(x, [r["ours_cost"] for r in mine], "o-", label="RLM task")
        axes[1][col].plot([2 ** r["exp"] for r in answered], [r["whole_cost"] for r in answered], "s--",
                          label="whole context")
        if refused:
            axes[0][col].plot(refused, [0] * len(refused), "rx", markersize=9, label="whole context refused (400)")
        axes[0][col].set_title(name)
        axes[0][col].set_ylim(-0.05, 1.05)
        axes[0][col].set_ylabel("score")
        axes[1][col].set_ylabel("USD per input (gpt-5-mini prices)")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("context size, tokens (bytes / 4)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        axes[1][col].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def _fmt_cost(usd: float) -> str:
    return f"{usd:.4f}" if usd >= 0.0001 or usd == 0 else f"{usd:.6f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-exp", type=int, default=NIAH_MAX_EXP,
                        help=f"largest size 2^N tokens for S-NIAH (OOLONG and pairs stop at 2^{RECORDS_MAX_EXP})")
    parser.add_argument("--min-exp", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="sizes 2^13..2^14 only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--error-rate", type=float, default=0.0, help="seeded oracle mistakes (0 for the self-check)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_TOKENS, help="oracle context window, tokens")
    parser.add_argument("--dir", type=Path, default=None, help="where inputs go (default: a temporary directory)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG path (default: <dir>/longcontext.png)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--only", choices=sorted(SOLVERS), action="append", help="run only these benchmarks")
    args = parser.parse_args(argv)
    max_exp = min(args.max_exp, 14) if args.quick else args.max_exp

    # Token counts are the UTF-8 byte bound on every machine, so the table does not depend on tiktoken's cache.
    os.environ["RLM_TOKEN_COUNTING"] = "bytes"
    os.environ.setdefault("OPENAI_API_KEY", "sk-offline-benchmark")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="rlm-longctx-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "cache", ignore_errors=True)
    (workdir / "cache").mkdir()
    started = time.perf_counter()
    oracle = Oracle(instance_labels(), window_tokens=args.window, error_rate=args.error_rate, seed=args.seed)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    with LoopbackServer(responder=oracle) as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        bench = Bench(server, workdir)
        # One throwaway call first, so the first row does not pay for loading the SDK and opening a connection.
        run_task(lambda ctx: whole_context(ctx, ["warm-up"]), "warm-up", bench.config())
        for name, solve in SOLVERS.items():
            if args.only and name not in args.only:
                continue
            top = max_exp if name == "s-niah" else min(max_exp, RECORDS_MAX_EXP)
            for exp in range(args.min_exp, top + 1):
                gen_start = time.perf_counter()
                gen = GENERATORS[name](workdir, exp, args.seed)
                gen_seconds = time.perf_counter() - gen_start
                out = solve(bench, gen, args.seed)
                ours, wholes, regex = out["ours"], out["whole"], out["regex"]
                row = {"benchmark": name, "exp": exp, "bytes": gen.manifest["bytes"], "queries": out["queries"],
                       "gen_seconds": gen_seconds,
                       **{f"ours_{k}": v for k, v in ours.items() if k not in ("result", "problems", "inexact")},
                       "whole_score": sum(w["score"] for w in wholes) / len(wholes),
                       "whole_cost": sum(w["cost"] for w in wholes), "whole_calls": round(sum(w["calls"] for w in wholes)),
                       "whole_refused": sum(w["refused"] for w in wholes),
                       "regex_score": regex["score"], "regex_seconds": regex["seconds"]}
                rows.append(row)
                where = f"{name} 2^{exp}"
                failures += [f"{where}: {p}" for p in ours["problems"]]
                failures += [f"{where}: whole-context baseline failed: {w['error']}" for w in wholes if not w["ok"]]
                if not regex["ok"] or regex["calls"]:
                    failures.append(f"{where}: regex baseline failed or called the model: {regex['error']}")
                if args.error_rate == 0:  # an error-free oracle: anything short of exact is a bug in the task
                    failures += [f"{where}: {p}" for p in ours["inexact"]]
                    if ours["score"] != 1.0:
                        failures.append(f"{where}: our task scored {ours['score']:.4f}, not 1.0 (a bug in the task)")
                print(f"{where}: ours {ours['score']:.3f} in {ours['seconds']:.2f}s, whole {row['whole_score']:.3f}, "
                      f"regex {regex['score']:.3f}", file=sys.stderr, flush=True)
    total = time.perf_counter() - started

    print(f"\nLong-context benchmarks on the loopback oracle (seed {args.seed}, oracle error rate {args.error_rate}, "
          f"window {args.window} tokens; tokens = bytes / 4; prices {PRICES['model']} "
          f"${PRICES['price_input_per_mtok']} / ${PRICES['price_output_per_mtok']} per 1M in / out)\n")
    headers = ["benchmark", "tokens", "queries", "ours score", "calls", "in tok", "out tok", "ours $", "$/query",
               "dry worst $", "budget $", "ours s", "replay", "whole score", "whole $", "regex score"]
    body = []
    for r in rows:
        refused = f" ({r['whole_refused']}x400)" if r["whole_refused"] else ""
        body.append([r["benchmark"], f"2^{r['exp']}", r["queries"], f"{r['ours_score']:.3f}", r["ours_calls"],
                     r["ours_in"], r["ours_out"], _fmt_cost(r["ours_cost"]), _fmt_cost(r["ours_cost"] / r["queries"]),
                     _fmt_cost(r["ours_worst"]), f"{r['ours_budget']:.2f}", f"{r['ours_seconds']:.2f}",
                     f"{r['ours_warm_requests']} req ${r['ours_warm_cost']:.0f} {r['ours_warm_seconds']:.2f}s",
                     f"{r['whole_score']:.3f}{refused}", _fmt_cost(r["whole_cost"]), f"{r['regex_score']:.3f}"])
    print(table(headers, body))
    print("\nours = rlm/tasks/generic.py (find_answer, count_by_label, find_pairs); one count_by_label run answers all of "
          "an input's OOLONG questions, find_pairs runs once per pair condition. budget = the dry run's worst case; "
          "replay = the same run from the warm cache. whole = the whole input in one call per query "
          f"(output cap {WHOLE_CONTEXT_OUTPUT_CAP}); regex = no model.")
    if not args.no_plot:
        print(_plot(rows, args.plot or workdir / "longcontext.png"))
    (workdir / "longcontext.json").write_text(json.dumps(rows, indent=1))
    print(f"rows: {workdir / 'longcontext.json'}; inputs and manifests: {workdir}")
    print(f"\nwall time {total:.1f} s")
    if failures:
        print("\nSELF-CHECK FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("self-check passed" + (": every task scored 1.0 at every size" if args.error_rate == 0 else
                                 " (scores not checked: error rate > 0)")
          + "; replays were free; no run spent more than its dry run's worst case")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
