#!/usr/bin/python3
"""Steps and time to competence of one text-to-image recipe (issue #15).

    /usr/bin/python3 bench/competence.py RUN_DIR OUT_DIR [--steps N] [--every K]
        [--budget-seconds S] [--set key=value ...]

Trains `recap t2i train` on RUN_DIR's corpus and tokenizer (a finished `recap run`, e.g.
runs/demo from `make demo`) with human captions and the competence probe judged by RUN_DIR's
evaluator every K steps, then prints the probe's trajectory and the first validation at which
the model is competent (dev multi-object prompts: SOA-C >= 80% and colour binding >= 60%;
stages/competence.h). Training is seeded (run.seed of RUN_DIR's corpus config unless --set), so
the step count to competence is a function of the recipe, the seed and the CPU's kernels; the
seconds come from the trainer's optimizer-only clock (train_seconds), so compare them only
between runs on the same idle machine. --budget-seconds stops the table at that much training
time and says whether competence came within it. The model sizes and every other key come from
RUN_DIR/corpus's config plus --set, as for `recap t2i train`.
"""
import argparse
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('run_dir')
    ap.add_argument('out_dir')
    ap.add_argument('--recap', default=os.path.join('build', 'recap'))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int, default=1500)
    ap.add_argument('--every', type=int, default=150)
    ap.add_argument('--budget-seconds', type=float, default=900)
    ap.add_argument('--set', action='append', default=[], dest='sets')
    args = ap.parse_args()

    cmd = [args.recap, '--threads', str(args.threads), 't2i', 'train',
           '--corpus', os.path.join(args.run_dir, 'corpus'),
           '--tokenizer', os.path.join(args.run_dir, 'tokenizer', 'tokenizer.model'),
           '--out', args.out_dir,
           '--set', 't2i.captions=human',
           '--set', f't2i.steps={args.steps}',
           '--set', f't2i.validate_every={args.every}',
           '--set', 't2i.probe_evaluator=' + os.path.join(args.run_dir, 'evaluator')]
    for kv in args.sets:
        cmd += ['--set', kv]
    print(' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True)

    rows = []
    with open(os.path.join(args.out_dir, 'train', 'metrics.jsonl')) as f:
        for line in f:
            r = json.loads(line)
            if r.get('split') == 'validation' and 'probe_soa_c' in r:
                rows.append(r)
    if not rows:
        sys.exit('no probe records: was the probe evaluator found?')
    print(f"\n{'step':>6} {'train s':>8} {'SOA-C %':>8} {'colour %':>9} {'count %':>8}")
    first = None
    for r in rows:
        mark = ''
        if r['probe_competent'] and first is None:
            first = r
            mark = '  <- competent'
        print(f"{r['step']:>6} {r['train_seconds']:>8.0f} {100 * r['probe_soa_c']:>8.1f} "
              f"{100 * r['probe_colour_binding']:>9.1f} {100 * r['probe_count_exact']:>8.1f}{mark}")
    if first is None:
        print(f"\nnot competent within {rows[-1]['step']} steps "
              f"({rows[-1]['train_seconds']:.0f} s of training)")
    else:
        within = first['train_seconds'] <= args.budget_seconds
        print(f"\ncompetent at step {first['step']} after {first['train_seconds']:.0f} s of "
              f"training ({'within' if within else 'beyond'} the {args.budget_seconds:.0f} s "
              "budget)")


if __name__ == '__main__':
    main()
