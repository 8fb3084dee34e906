"""`w2s choose-on-val`: pick a panel's strong representation and its teachers' fit from search sweeps on val.

    w2s choose-on-val --sweeps runs/search/esol_random/* --output runs/search/esol_random/choice.json

Each sweep must have been run with `eval_split: val` (scripts/configs/sweep/figure2/search/); the rule is
w2s_hf.experiments.choose_on_val's, declared before any test number is read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from w2s_hf.config import ConfigError


@dataclass
class ChooseArguments:
    sweeps: list[str] = field(default_factory=list, metadata={"help": "Search sweep folders run on val."})
    output: str | None = field(default=None, metadata={"help": "Write every candidate line and the choice here."})


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    from w2s_hf.config import W2SArgumentParser
    from w2s_hf.experiments.choose_on_val import choose, meets_targets, search_lines

    try:
        (args,) = W2SArgumentParser(ChooseArguments).parse_args_and_config(argv)
        if not args.sweeps:
            raise ConfigError("give the search sweep folders: --sweeps runs/search/<panel>/*")
        lines, families = search_lines([Path(s) for s in args.sweeps])
        chosen = choose(lines)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("| strong | teachers | weak family | points | val slope | val R² | gain > 0 | mean non-realizability "
          "| meets targets |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = {ln["sweep"]: i for i, ln in enumerate(lines)}
    for ln in sorted(lines + families, key=lambda ln: (order[ln["sweep"]], ln["weak"] != "all families", ln["weak"])):
        print(f"| {ln['strong']} | {ln['teachers']} | {ln['weak']} | {ln['points']} | {_fmt(ln['slope'])} "
              f"| {_fmt(ln['r2'])} "
              f"| {ln['share_positive_gain']:.0%} | {ln['mean_nonrealizability']:+.3f} "
              f"| {'yes' if meets_targets(ln) else 'no'} |")
    print("(the candidates are the panels, weak = all families; the single families are diagnostics)")
    print(f"\nchosen on val: strong {chosen['strong']}, teachers {chosen['teachers']}, weak {chosen['weak']} "
          f"({chosen['rule']}; {chosen['candidates']} candidates; {chosen['sweep']})")
    if args.output:
        from w2s_hf.atomic import write_json_atomic

        write_json_atomic(args.output, {"choice": chosen, "candidates": lines, "families": families})
    return 0


if __name__ == "__main__":
    sys.exit(main())
