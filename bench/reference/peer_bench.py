#!/usr/bin/python3
"""recap's models against the same models in PyTorch Python (issues #4 and #5).

    /usr/bin/python3 bench/reference/peer_bench.py BUILD_DIR [--threads 1 2] [--rounds 3]

1. BUILD_DIR/bench/recap_peer_bench export: quick-preset-sized captioner and t2i model with
   seeded random weights, the benchmark inputs and recap's outputs on them.
2. The python models (recap_models.py) load the same .safetensors strictly by name and must
   reproduce those outputs: captioner logits and UNet eps within 1e-4, identical greedy tokens
   on the whole batch of 64, DDIM samples within 1e-3, the training step's loss, gradient norm
   and updated weights. Any difference stops the run before a ratio is reported.
3. For each thread count, each workload alternates rounds of recap and PyTorch, each round a
   fresh process with one warm-up and --repeats timed runs; the medians over all rounds are
   compared (ratio = PyTorch time / recap time, > 1: recap is faster).
4. GFLOP/s: conv/linear/attention FLOPs counted on the python model (recap_models.FlopCounter;
   a training step counted as 3x its forward), over each side's median time, as a share of the
   machine's matmul peak at the same thread count (measured by recap_peer_bench peak).

`python3 peer_bench.py time DIR WORKLOAD THREADS REPEATS` is the PyTorch timing process.
`python3 peer_bench.py parity RECAP_PEER_BENCH` is step 2 alone on small batches (a few seconds):
the ctest PeerParity runs it on every `make test`, as llm.c checks its C against PyTorch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recap_models as rm  # noqa: E402


def build(work):
    with open(os.path.join(work, 'models.json')) as f:
        cfg = json.load(f)
    captioner = rm.load_strict(rm.Captioner(cfg['captioner']),
                               os.path.join(work, 'captioner.safetensors'))
    t2i = rm.load_strict(rm.T2iModel(cfg['text_encoder'], cfg['unet']),
                         os.path.join(work, 't2i.safetensors'))
    inputs = rm.load_safetensors(os.path.join(work, 'inputs.safetensors'))
    return cfg, captioner, t2i, inputs


def make_optimizer(model, train):
    return torch.optim.AdamW(model.parameters(), lr=train['lr'], betas=tuple(train['betas']),
                             weight_decay=train['weight_decay'])


def unconditional(length):
    """stages::unconditional_ids: [BOS, EOS, PAD...] [1, length]."""
    uncond = torch.full((1, length), rm.PAD, dtype=torch.long)
    uncond[0, 0], uncond[0, 1] = rm.BOS, rm.EOS
    return uncond


def sample(t2i, schedule, cfg, noise, ids):
    return rm.sample_ddim_cfg(t2i, schedule, noise, ids, unconditional(ids.size(1)),
                              cfg['sample']['steps'], cfg['sample']['guidance'],
                              cfg['train']['prediction'])


def train_step(t2i, optimizer, schedule, cfg, x0, ids, t, eps):
    train = cfg['train']
    return rm.train_step(t2i, optimizer, schedule, x0, ids, t, eps, train['min_snr_gamma'],
                         train['grad_clip'], train['prediction'])


def check_sampler(t2i, schedule, cfg, inp, ref, close, report):
    """DDIM with guidance, step by step from recap's recorded states: the guided model output
    (eps or v) on recap's x_t, and the update from recap's x_t and that output. End to end the samples drift apart however
    right both are: the first step (t = 999 -> 946) multiplies eps rounding by
    sqrt(abar_946 / abar_999) ~ 1700, and a random UNet amplifies that further."""
    ids = inp['sample_ids'][:2]
    uncond = unconditional(ids.size(1))
    both = torch.cat([uncond.expand_as(ids), ids])
    ts = rm.sampling_timesteps(schedule.size(), cfg['sample']['steps'])
    prediction = cfg['train']['prediction']
    out_diff = step_diff = 0.0
    for i, step in enumerate(ts):
        x, out = ref[f'ddim_x.{i}'], ref[f'ddim_out.{i}']
        t = torch.full((x.size(0),), step, dtype=torch.long)
        got = rm.guided_output(t2i, x, t, both, cfg['sample']['guidance'])
        out_diff = max(out_diff, (got - out).abs().max().item())
        want = ref[f'ddim_x.{i + 1}'] if i + 1 < len(ts) else ref['ddim_samples']
        nxt = rm.ddim_step(schedule, x, out, step, ts[i + 1] if i + 1 < len(ts) else None,
                           prediction)
        step_diff = max(step_diff, ((nxt - want).abs().max() / want.abs().max()).item())
    close(f'DDIM guided {prediction}, each of {len(ts)} steps', torch.tensor(out_diff),
          torch.tensor(0.0), 1e-4)
    close('DDIM update, each step (relative to max |x|)', torch.tensor(step_diff),
          torch.tensor(0.0), 1e-5)
    end = sample(t2i, schedule, cfg, inp['sample_noise'][:2], ids)
    report.append('DDIM samples end to end (not checked, see above): max |diff| '
                  f'{(end - ref["ddim_samples"]).abs().max().item():.2e}')


def check(work):
    """Raises SystemExit naming every output that differs from recap's."""
    torch.set_num_threads(1)
    cfg, captioner, t2i, inp = build(work)
    ref = rm.load_safetensors(os.path.join(work, 'outputs.safetensors'))
    schedule = rm.CosineSchedule(cfg['train']['timesteps'])
    failures, report = [], []

    def close(name, got, want, tol):
        diff = (got.double() - want.double()).abs().max().item()
        report.append(f'{name}: max |diff| {diff:.2e} (limit {tol:g})')
        if not diff < tol:
            failures.append(report[-1])

    captioner.eval()
    t2i.eval()
    with torch.no_grad():
        images = inp['caption_images'][:4]
        logits = captioner.logits(captioner.encode_image(images), inp['check_caption_ids'])
        close('captioner logits', logits, ref['caption_logits'], 1e-4)
        x0, ids = inp['train_x0'][:4], inp['train_ids'][:4]
        x_t = schedule.add_noise(x0, inp['check_eps'], inp['check_t'])
        close(f'UNet {cfg["train"]["prediction"]}', t2i(x_t, inp['check_t'], ids),
              ref['unet_out'], 1e-4)
        check_sampler(t2i, schedule, cfg, inp, ref, close, report)
    tokens = rm.greedy_decode(captioner, inp['caption_images'], cfg['caption']['style'])
    want = [[t for t in row if t >= 0] for row in ref['greedy_tokens'].tolist()]
    same = sum(a == b for a, b in zip(tokens, want))
    report.append(f'greedy tokens: {same}/{len(want)} captions identical '
                  f'({sum(map(len, want))} tokens)')
    if same != len(want):
        failures.append(report[-1])

    t2i.train()
    optimizer = make_optimizer(t2i, cfg['train'])
    loss, norm = train_step(t2i, optimizer, schedule, cfg, x0, ids, inp['check_t'],
                            inp['check_eps'])
    close('train loss', torch.tensor(loss), ref['train_loss'][0], 1e-5 * abs(loss) + 1e-7)
    close('train grad norm', torch.tensor(norm), ref['train_grad_norm'][0], 1e-4 * norm)
    state = dict(t2i.named_parameters())
    for key in ref:
        if key.startswith('stepped.'):
            close(f'after one AdamW step: {key[8:]}', state[key[8:]].detach(), ref[key], 1e-5)
    for line in report:
        print('  ' + line)
    if failures:
        raise SystemExit('peer bench: the PyTorch models do not reproduce recap\'s outputs, so '
                         'no ratio is reported:\n  ' + '\n  '.join(failures))


def count_flops(work):
    """FLOPs of one run of each workload (python models; the same operations as recap's)."""
    torch.set_num_threads(1)
    cfg, captioner, t2i, inp = build(work)
    schedule = rm.CosineSchedule(cfg['train']['timesteps'])
    out = {}
    with rm.FlopCounter(captioner) as c:
        rm.greedy_decode(captioner, inp['caption_images'], cfg['caption']['style'])
    out['caption'] = c.flops
    t2i.eval()
    with torch.no_grad():
        x0, ids = inp['train_x0'], inp['train_ids']
        t = torch.zeros(x0.size(0), dtype=torch.long)
        with rm.FlopCounter(t2i) as c:
            t2i(x0, t, ids)
        out['train'] = 3 * c.flops  # forward + backward (2x forward)
    with rm.FlopCounter(t2i) as c:
        sample(t2i, schedule, cfg, inp['sample_noise'], inp['sample_ids'])
    out['sample'] = c.flops
    return out


def time_python(work, workload, threads, repeats):
    """The PyTorch side of `recap_peer_bench time`: same workloads, same JSON line."""
    torch.set_num_threads(threads)
    cfg, captioner, t2i, inp = build(work)
    schedule = rm.CosineSchedule(cfg['train']['timesteps'])
    gen = torch.Generator().manual_seed(1)
    if workload == 'caption':
        def once():
            tokens = rm.greedy_decode(captioner, inp['caption_images'], cfg['caption']['style'])
            return {'images': len(tokens), 'tokens': sum(map(len, tokens))}
    elif workload == 'train':
        t2i.train()
        optimizer = make_optimizer(t2i, cfg['train'])
        x0, ids = inp['train_x0'], inp['train_ids']

        def once():
            t = torch.randint(schedule.size(), (x0.size(0),), generator=gen)
            eps = torch.randn(x0.shape, generator=gen)
            train_step(t2i, optimizer, schedule, cfg, x0, ids, t, eps)
            return {'images': x0.size(0)}
    elif workload == 'sample':
        t2i.eval()

        def once():
            sample(t2i, schedule, cfg, inp['sample_noise'], inp['sample_ids'])
            return {'images': inp['sample_noise'].size(0)}
    else:
        raise SystemExit(f'unknown workload {workload}')
    once()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work_done = once()
        work_done['seconds'] = time.perf_counter() - t0
        runs.append(work_done)
    print(json.dumps({'impl': 'pytorch', 'workload': workload, 'threads': threads,
                      'runs': runs}))


def run_json(cmd, threads):
    # OpenBLAS (pthread) starts one thread per core whatever torch's own count: pin it too, so
    # "N threads" means N for every kernel, on both sides.
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def parity(exe):
    """Step 2 alone: export the quick-sized models with small batches and check them."""
    with tempfile.TemporaryDirectory(prefix='recap-parity-') as work:
        subprocess.run([exe, 'export', work, '--small'], check=True, capture_output=True)
        print(f'recap vs PyTorch {torch.__version__}, 1 thread:')
        check(work)
    print('parity: every output within its limit')


def main():
    if len(sys.argv) > 1 and sys.argv[1] == 'time':
        _, _, work, workload, threads, repeats = sys.argv
        return time_python(work, workload, int(threads), int(repeats))
    if len(sys.argv) == 3 and sys.argv[1] == 'parity':
        return parity(sys.argv[2])
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('build', help='the CMake build dir holding bench/recap_peer_bench')
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--workloads', nargs='+', default=['caption', 'train', 'sample'])
    p.add_argument('--rounds', type=int, default=3, help='alternating recap/PyTorch processes')
    p.add_argument('--repeats', type=int, default=2, help='timed runs per process')
    p.add_argument('--json', help='write every timing here')
    a = p.parse_args()
    exe = os.path.join(a.build, 'bench', 'recap_peer_bench')
    me = [sys.executable, os.path.abspath(__file__), 'time']
    with tempfile.TemporaryDirectory(prefix='recap-peer-') as work:
        subprocess.run([exe, 'export', work], check=True, capture_output=True)
        print('equivalence check (1 thread):')
        check(work)
        flops = count_flops(work)
        load = os.getloadavg()[0]
        results = {'load_average_at_start': load, 'flops': flops, 'peak': {}, 'runs': []}
        rows = []
        for threads in a.threads:
            peak = run_json([exe, 'peak', str(threads)], threads)
            results['peak'][threads] = peak
            for w in a.workloads:
                times = {'recap': [], 'pytorch': []}
                for _ in range(a.rounds):
                    for impl, cmd in (('recap', [exe, 'time', work]), ('pytorch', me + [work])):
                        r = run_json(cmd + [w, str(threads), str(a.repeats)], threads)
                        results['runs'].append(r)
                        times[impl] += r['runs']
                med = {k: statistics.median(r['seconds'] for r in v) for k, v in times.items()}
                rows.append((threads, w, times, med, peak))
                print(f'  {w}, {threads} thread(s): recap {med["recap"]:.3f} s, '
                      f'PyTorch {med["pytorch"]:.3f} s (medians)', file=sys.stderr, flush=True)
        results['load_average_at_end'] = os.getloadavg()[0]

    print(f'\nload average: {results["load_average_at_start"]:.1f} at start, '
          f'{results["load_average_at_end"]:.1f} at end')
    for threads, peak in results['peak'].items():
        print(f'matmul peak, {threads} thread(s): {peak["gflops_512"]:.1f} GFLOP/s at 512, '
              f'{peak["gflops_2048"]:.1f} at 2048 ({peak["blas"]})')
    print('\n| threads | workload | recap | PyTorch | ratio (PyTorch time / recap time) | '
          'recap GFLOP/s (% of peak) | PyTorch GFLOP/s (% of peak) |')
    print('|---|---|---|---|---|---|---|')
    for threads, w, times, med, peak in rows:
        first = times['recap'][0]

        def unit(s):
            rate = f'{first["images"] / s:,.1f} img/s'
            return rate + (f', {first["tokens"] / s:,.0f} tok/s' if w == 'caption' else '')
        gf = {k: flops[w] / s / 1e9 for k, s in med.items()}
        share = {k: 100 * g / peak['gflops_2048'] for k, g in gf.items()}
        print(f'| {threads} | {w} | {unit(med["recap"])} | {unit(med["pytorch"])} | '
              f'{med["pytorch"] / med["recap"]:.2f} | {gf["recap"]:.1f} ({share["recap"]:.0f}%) | '
              f'{gf["pytorch"]:.1f} ({share["pytorch"]:.0f}%) |')
    print(f'\nFLOPs per run: ' + ', '.join(f'{w} {f / 1e9:.2f} G' for w, f in flops.items()))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
