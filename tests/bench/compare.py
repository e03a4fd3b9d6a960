"""Two revisions side by side, from the results.md that deploy/bench wrote for each
run: every figure both printed, each side's mean over its runs, and head / base. Then
the cost targets, each with its ratio and whether it is met.

    compare.py --base-label L --base A.md [A2.md ...] --head-label L --head B.md [B2.md ...]
               [--out compare.md]

A figure is matched by its name with the run's own numbers taken out (the parentheses
that hold a figure, such as "(offered 100.0/s)"). Its value's numbers are averaged over
the runs, position by position; a value that names a cost "per onboarding" is that
cost. Limits are compared too: their ratio shows how alike the machine was for both."""
import argparse
import re
import sys

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# A parenthesis in a figure's name that holds one of the run's numbers.
RUN_PART = re.compile(r"\s*\([^()]*\d[^()]*\)")


def figures(path):
    """{figure key: (name as printed, [numbers])} of a results.md's first table, in order."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| figure | value |")), None)
    if start is None:
        raise ValueError(f"{path}: no table of figures (is it a deploy/bench results.md?)")
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2:
            continue
        name, value = cells[0], cells[1]
        per = re.search(r"(" + NUMBER.pattern + r") ms per onboarding", value)
        nums = [per.group(1)] if per else NUMBER.findall(value)
        last = None if per else list(NUMBER.finditer(value))[-1:]
        unit = "ms per onboarding" if per else value[last[0].end():].strip() if last else ""
        out[RUN_PART.sub("", name)] = (name, [float(n.replace(",", "")) for n in nums], unit[:24])
    return out


def machine(path):
    with open(path, encoding="utf-8") as fh:
        return next((line for line in fh if line.startswith("Machine:")), "Machine: ?").strip()


def mean(runs, key):
    """Position by position over the runs that have the figure (with as many numbers
    as the first run that has it: a value that lost a part is left out)."""
    got = [r[key][1] for r in runs if key in r]
    if not got:
        return None
    got = [g for g in got if len(g) == len(got[0])]
    return [sum(col) / len(col) for col in zip(*got)]


def show(nums):
    if nums is None:
        return "-"
    return " / ".join(f"{n:,.0f}" if n >= 100 or n == int(n) else f"{n:.2f}" if n >= 0.01 else f"{n:.4f}"
                      for n in nums)


def ratio(head, base):
    if head is None or base is None or len(head) != len(base):
        return ""
    return " / ".join(f"{h / b:.2f}" if b else "-" for h, b in zip(head, base))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-label", required=True)
    ap.add_argument("--base", nargs="+", required=True)
    ap.add_argument("--head-label", required=True)
    ap.add_argument("--head", nargs="+", required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    try:
        base = [figures(p) for p in args.base]
        head = [figures(p) for p in args.head]
    except (OSError, ValueError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return 1
    keys = list(head[0]) + [k for k in base[0] if k not in head[0]]
    b_, h_ = args.base_label, args.head_label
    rows = [f"| figure | {b_} | {h_} | {h_} / {b_} |", "|---|---|---|---|"]
    for key in keys:
        b, h = mean(base, key), mean(head, key)
        unit = " " + (head[0].get(key) or base[0][key])[2]
        rows.append(f"| {key} | {show(b)}{unit if b is not None else ''} | {show(h)}{unit if h is not None else ''} | "
                    f"{ratio(h, b)} |")

    def one(runs, key, i=0):
        m = mean(runs, key)
        return m[i] if m and len(m) > i else None

    targets = [("| target | " + b_ + " | " + h_ + " | ratio | met |"), "|---|---|---|---|---|"]

    def against_base(name, key, limit):
        b, h = one(base, key), one(head, key)
        if not b or h is None:
            targets.append(f"| {name} <= {limit} of {b_}'s | {show(None if b is None else [b])} | "
                           f"{show(None if h is None else [h])} | | **not measured** |")
            return
        r = h / b
        targets.append(f"| {name} <= {limit} of {b_}'s | {b:.2f} ms | {h:.2f} ms | {r:.2f} | "
                       f"{'yes' if r <= limit else '**no**'} |")

    def absolute(name, key, i, limit, unit):
        b, h = one(base, key, i), one(head, key, i)
        if h is None:
            targets.append(f"| {name} <= {limit} {unit} | {show(None if b is None else [b])} | - | | **not measured** |")
            return
        targets.append(f"| {name} <= {limit} {unit} | {'-' if b is None else f'{b:.1f} {unit}'} | {h:.1f} {unit} | "
                       f"{h / limit:.2f} of the target | {'yes' if h <= limit else '**no**'} |")

    against_base("machine CPU per onboarding at saturation", "saturation: the machine's CPU busy until all confirmed",
                 0.5)
    against_base("PostgreSQL CPU per onboarding at saturation", "saturation: PostgreSQL CPU", 0.5)
    absolute("open loop at 100/s: end to end p99", "open loop at 100/s: end to end p50 / p90 / p99 / max", 2, 100,
             "ms")
    absolute("one at a time: end to end p50", "one at a time: end to end p50", 0, 20, "ms")
    for key in head[0]:
        m = re.match(r"saturation: (.+) private memory \(USS\) after ([\d,]+) onboardings", head[0][key][0])
        if m:
            absolute(f"{m.group(1)} private memory (USS) after {m.group(2)} onboardings"
                     f"{', once idle' if key.endswith('once idle') else ''}", key, 0, 12, "MiB")
    text = (f"{machine(args.head[0])}\n\n{b_}: {len(base)} run(s), {h_}: {len(head)} run(s), interleaved; each "
            f"figure is the mean over its runs.\n\n" + "\n".join(rows) + "\n\nTargets:\n\n" + "\n".join(targets))
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(f"# deploy/bench --compare\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
