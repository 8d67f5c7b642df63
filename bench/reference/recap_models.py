"""The captioner, text encoder, UNet, greedy decoding, DDIM sampling with classifier-free
guidance and the t2i training step of recap, written in plain PyTorch: the peer the C++ code is
timed against (docs/BENCHMARKS.md). Each class mirrors its C++ twin in src/ operation by
operation, with the same parameter names, so recap's .safetensors load by name with strict
checking. Runs on Debian's python3-torch 1.13 (no scaled_dot_product_attention, no torchvision).

The C++ files mirrored: nn/attention.cpp, nn/transformer.cpp, nn/embeddings.cpp,
models/captioner.cpp, models/decoding.cpp (greedy), models/text_encoder.cpp, models/unet.cpp,
stages/t2i_model.cpp, diffusion/{schedule,samplers,guidance,loss}.cpp.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS, SHORT, LONG = 0, 2, 3, 4, 5  # text/tokenizer.h
PROMPT_LENGTH = 2  # BOS, style


class FlopCounter:
    """FLOPs (2 per multiply-add) of the convolutions, linear layers, attention matmuls and the
    tied output projection run inside `with FlopCounter(model) as c:`, in c.flops. Norms,
    activations and elementwise ops are left out (a few percent at these sizes)."""
    active = None

    def __init__(self, model):
        self.model, self.flops, self.hooks = model, 0, []

    @classmethod
    def add(cls, n):
        if cls.active is not None:
            cls.active.flops += n

    def _hook(self, module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            self.flops += 2 * output.numel() * (module.in_channels // module.groups) * k
        else:
            self.flops += 2 * output.numel() * module.in_features

    def __enter__(self):
        for m in self.model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                self.hooks.append(m.register_forward_hook(self._hook))
        FlopCounter.active = self
        return self

    def __exit__(self, *exc):
        FlopCounter.active = None
        for h in self.hooks:
            h.remove()


# --- nn/ -------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, dim, heads, context_dim=0):
        super().__init__()
        self.dim, self.heads = dim, heads
        kv_dim = context_dim if context_dim > 0 else dim
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv_dim, dim, bias=False)
        self.to_v = nn.Linear(kv_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def split_heads(self, t):  # [B, T, D] -> [B, H, T, Dh]
        return t.view(t.size(0), t.size(1), self.heads, self.dim // self.heads).transpose(1, 2)

    def forward(self, x, context=None, causal=False, cache=None, key_padding=None):
        """cache: a dict {'k', 'v'} grown (self) or filled once (cross), as nn::KVCache."""
        cross = context is not None
        q = self.split_heads(self.to_q(x))
        offset = 0
        if cross and cache is not None and 'k' in cache:
            k, v = cache['k'], cache['v']
        else:
            source = context if cross else x
            k = self.split_heads(self.to_k(source))
            v = self.split_heads(self.to_v(source))
            if cache is not None and not cross and 'k' in cache:
                offset = cache['k'].size(2)
                k = torch.cat([cache['k'], k], 2)
                v = torch.cat([cache['v'], v], 2)
            if cache is not None:
                cache['k'], cache['v'] = k, v
        bias = None
        if causal and not cross:
            qi = torch.arange(x.size(1)).unsqueeze(1) + offset
            ki = torch.arange(k.size(2)).unsqueeze(0)
            bias = torch.zeros(x.size(1), k.size(2)).masked_fill(ki > qi, float('-inf'))
        if key_padding is not None:
            pad = torch.zeros(key_padding.shape).masked_fill(key_padding, float('-inf'))
            pad = pad.view(key_padding.size(0), 1, 1, key_padding.size(1))
            bias = pad if bias is None else bias + pad
        # compat::attention as libtorch 1.13 runs it.
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        if bias is not None:
            scores = scores + bias
        out = torch.matmul(torch.softmax(scores, -1), v)
        FlopCounter.add(2 * 2 * q.size(0) * q.size(1) * q.size(2) * k.size(2) * q.size(3))
        return self.to_out(out.transpose(1, 2).reshape(x.size(0), x.size(1), self.dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, context_dim=0, mlp_ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.has_cross = context_dim > 0
        if self.has_cross:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(),
                                nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x, context=None, causal=False, cache=None, context_padding=None,
                padding=None):
        h = x + self.attn1(self.norm1(x), None, causal, cache['self'] if cache else None,
                           padding)
        if self.has_cross:
            h = h + self.attn2(self.norm2(h), context, False, cache['cross'] if cache else None,
                               context_padding)
        return h + self.ff(self.norm3(h))


def timestep_embedding(t, dim, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32).unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


# --- models/captioner.cpp, models/decoding.cpp ------------------------------------------------

def conv_block(cin, cout, stride):
    """nn/conv.cpp: 3x3 conv, GroupNorm with gcd(8, cout) groups, SiLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
                         nn.GroupNorm(math.gcd(8, cout), cout), nn.SiLU())


class ConvBackbone(nn.Module):
    """nn/conv.cpp: full-resolution block, stride-2 blocks to `width`, residual blocks."""

    def __init__(self, o):
        super().__init__()
        stem_width = max(8, o['width'] // 2)
        self.stem = conv_block(3, stem_width, 1)
        downs, channels, s = [], stem_width, 1
        while s < o['stride']:
            downs.append(conv_block(channels, o['width'], 2))
            channels, s = o['width'], s * 2
        self.down = nn.ModuleList(downs)
        self.blocks = nn.ModuleList([conv_block(o['width'], o['width'], 1)
                                     for _ in range(o['depth'])])

    def forward(self, x):
        x = self.stem(x)
        for block in self.down:
            x = block(x)
        for block in self.blocks:
            x = x + block(x)
        return x


class Captioner(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.o = o
        self.vision = ConvBackbone(o['vision'])
        d = o['dim']
        self.image_proj = nn.Linear(o['vision']['width'], d)
        self.image_position = nn.Parameter(torch.zeros(o['grid'] ** 2, d))
        self.image_blocks = nn.ModuleList(
            [TransformerBlock(d, o['heads']) for _ in range(o['encoder_layers'])])
        self.image_norm = nn.LayerNorm(d)
        self.token_embedding = nn.Embedding(o['vocab_size'], d)
        self.position_embedding = nn.Embedding(o['max_length'], d)
        self.blocks = nn.ModuleList(
            [TransformerBlock(d, o['heads'], d) for _ in range(o['layers'])])
        self.final_norm = nn.LayerNorm(d)
        if not o['tie_embeddings']:
            self.lm_head = nn.Linear(d, o['vocab_size'], bias=False)

    def encode_image(self, images):
        h = self.vision(images)
        if h.size(2) != self.o['grid']:
            h = F.adaptive_avg_pool2d(h, self.o['grid'])
        h = self.image_proj(h.flatten(2).transpose(1, 2)) + self.image_position.unsqueeze(0)
        for block in self.image_blocks:
            h = block(h)
        return self.image_norm(h)

    def logits(self, image_tokens, ids, caches=None):
        offset = caches[0]['self']['k'].size(2) if caches and 'k' in caches[0]['self'] else 0
        positions = torch.arange(offset, offset + ids.size(1))
        h = self.token_embedding(ids) + self.position_embedding(positions).unsqueeze(0)
        for i, block in enumerate(self.blocks):
            h = block(h, image_tokens, True, caches[i] if caches else None)
        h = self.final_norm(h)
        if self.o['tie_embeddings']:
            FlopCounter.add(2 * h.numel() * self.o['vocab_size'])
            return F.linear(h, self.token_embedding.weight)
        return self.lm_head(h)

    def make_caches(self):
        return [{'self': {}, 'cross': {}} for _ in self.blocks]


@torch.no_grad()
def greedy_decode(model, images, style=LONG, max_length=0):
    """models::decode with DecodeMethod::kGreedy: per image, the tokens after the prompt."""
    model.eval()
    max_length = max_length or model.o['max_length']
    image_tokens = model.encode_image(images)
    b = image_tokens.size(0)
    caches = model.make_caches()
    inp = torch.tensor([BOS, style]).unsqueeze(0).expand(b, PROMPT_LENGTH).contiguous()
    out = [[] for _ in range(b)]
    done = [False] * b
    live = b
    for _ in range(PROMPT_LENGTH, max_length):
        if live == 0:
            break
        nxt = model.logits(image_tokens, inp, caches)[:, -1].argmax(-1)
        for i, tok in enumerate(nxt.tolist()):
            if done[i]:
                continue
            out[i].append(tok)
            if tok == EOS:
                done[i] = True
                live -= 1
        inp = nxt.unsqueeze(1)
    return out


# --- models/text_encoder.cpp, models/unet.cpp, stages/t2i_model.cpp ---------------------------

class TextEncoder(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.token_embedding = nn.Embedding(o['vocab_size'], o['dim'])
        self.position_embedding = nn.Embedding(o['max_length'], o['dim'])
        self.blocks = nn.ModuleList(
            [TransformerBlock(o['dim'], o['heads']) for _ in range(o['layers'])])
        self.final_norm = nn.LayerNorm(o['dim'])
        self.causal = o.get('causal', True)

    def forward(self, ids):
        positions = torch.arange(ids.size(1))
        h = self.token_embedding(ids) + self.position_embedding(positions).unsqueeze(0)
        padding = None if self.causal else ids == PAD
        for block in self.blocks:
            h = block(h, None, self.causal, None, None, padding)
        return self.final_norm(h)


def conv(cin, cout, kernel, stride=1):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, time_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = conv(cin, cout, 3)
        self.time_proj = nn.Linear(time_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = conv(cout, cout, 3)
        self.skip = conv(cin, cout, 1) if cin != cout else None

    def forward(self, x, time):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(time)).unsqueeze(-1).unsqueeze(-1)
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class SpatialTransformer(nn.Module):
    def __init__(self, channels, heads, context_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.proj_in = conv(channels, channels, 1)
        self.block = TransformerBlock(channels, heads, context_dim)
        self.proj_out = conv(channels, channels, 1)

    def forward(self, x, context, context_padding):
        b, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        tokens = self.block(tokens, context, False, None, context_padding)
        return x + self.proj_out(tokens.transpose(1, 2).reshape(b, c, h, w))


class UNetLevel(nn.Module):
    def __init__(self):
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleList()
        self.resample_name = None

    def set_resample(self, name, module):  # registered as "downsample" / "upsample"
        setattr(self, name, module)
        self.resample_name = name

    @property
    def resample(self):
        return getattr(self, self.resample_name) if self.resample_name else None


class UNet(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.o = o
        levels, ch, groups = len(o['channel_mult']), o['channels'], o['groups']
        time_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, time_dim), nn.SiLU(),
                                      nn.Linear(time_dim, time_dim))
        self.conv_in = conv(o['in_channels'], ch, 3)
        skips, width = [ch], ch
        self.down = nn.ModuleList()
        for i in range(levels):
            level = UNetLevel()
            out = ch * o['channel_mult'][i]
            for _ in range(o['res_blocks']):
                level.res.append(ResBlock(width, out, time_dim, groups))
                if i in o['attention_levels']:
                    level.attn.append(SpatialTransformer(out, o['heads'], o['context_dim'], groups))
                width = out
                skips.append(width)
            if i + 1 < levels:
                level.set_resample('downsample', conv(width, width, 3, 2))
                skips.append(width)
            self.down.append(level)
        self.mid_res1 = ResBlock(width, width, time_dim, groups)
        self.mid_attn = SpatialTransformer(width, o['heads'], o['context_dim'], groups)
        self.mid_res2 = ResBlock(width, width, time_dim, groups)
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            level = UNetLevel()
            out = ch * o['channel_mult'][i]
            for _ in range(o['res_blocks'] + 1):
                level.res.append(ResBlock(width + skips.pop(), out, time_dim, groups))
                if i in o['attention_levels']:
                    level.attn.append(SpatialTransformer(out, o['heads'], o['context_dim'], groups))
                width = out
            if i > 0:
                level.set_resample('upsample', conv(width, width, 3))
            self.up.append(level)
        self.norm_out = nn.GroupNorm(groups, width)
        self.conv_out = conv(width, o['out_channels'], 3)

    def forward(self, x, t, context, context_padding=None):
        time = self.time_mlp(timestep_embedding(t, self.o['channels']))

        def run_level(level, h, j):
            h = level.res[j](h, time)
            if len(level.attn):
                h = level.attn[j](h, context, context_padding)
            return h

        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for j in range(len(level.res)):
                h = run_level(level, h, j)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, time), context, context_padding), time)
        for level in self.up:
            for j in range(len(level.res)):
                h = run_level(level, torch.cat([h, skips.pop()], 1), j)
            if level.resample is not None:
                h = level.resample(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        return self.conv_out(F.silu(self.norm_out(h)))


class T2iModel(nn.Module):
    def __init__(self, text_options, unet_options):
        super().__init__()
        self.text_encoder = TextEncoder(text_options)
        self.unet = UNet(unet_options)

    def forward(self, x_t, t, ids):
        return self.unet(x_t, t, self.text_encoder(ids), ids == PAD)


# --- diffusion/ ------------------------------------------------------------------------------

class CosineSchedule:
    """NoiseSchedule(BetaSchedule::Cosine, T): float64 tables on the CPU."""

    def __init__(self, steps=1000, s=0.008):
        u = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((u + s) / (1 + s) * (math.pi / 2)).square()
        abar = f / f[0]
        betas = (1 - abar[1:] / abar[:steps]).clamp_max(0.999)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)
        self.sqrt_abar = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_abar = (1 - self.alphas_cumprod).sqrt()

    def size(self):
        return self.alphas_cumprod.numel()

    def coefficient(self, table, t, like):
        return table.index_select(0, t).to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0, eps, t):
        return (self.coefficient(self.sqrt_abar, t, x0) * x0 +
                self.coefficient(self.sqrt_one_minus_abar, t, x0) * eps)

    def x0_from_eps(self, x_t, eps, t):
        return ((x_t - self.coefficient(self.sqrt_one_minus_abar, t, x_t) * eps) /
                self.coefficient(self.sqrt_abar, t, x_t))

    def target(self, prediction, x0, eps, t):
        """NoiseSchedule::target: eps, or v = sqrt(abar) eps - sqrt(1 - abar) x0."""
        if prediction == 'eps':
            return eps
        return (self.coefficient(self.sqrt_abar, t, x0) * eps -
                self.coefficient(self.sqrt_one_minus_abar, t, x0) * x0)

    def predicted_x0(self, out, prediction, x_t, t):
        if prediction == 'eps':
            return self.x0_from_eps(x_t, out, t)
        return (self.coefficient(self.sqrt_abar, t, x_t) * x_t -
                self.coefficient(self.sqrt_one_minus_abar, t, x_t) * out)

    def predicted_eps(self, out, prediction, x_t, t):
        if prediction == 'eps':
            return out
        return (self.coefficient(self.sqrt_one_minus_abar, t, x_t) * x_t +
                self.coefficient(self.sqrt_abar, t, x_t) * out)


def sampling_timesteps(T, n):
    if n == 1:
        return [T - 1]
    return [(2 * (T - 1) * (n - 1 - i) + (n - 1)) // (2 * (n - 1)) for i in range(n)]


def guided_output(model, x, t, both, scale):
    """classifier_free_guidance on the raw model output (eps or v): both = [uncond; cond] ids,
    one model call on [2B]."""
    uncond, cond = model(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
    return uncond + scale * (cond - uncond)


def ddim_step(schedule, x, out, step, next_step, prediction):
    """One sample_ddim step (eta 0) from timestep `step` to `next_step` (None: clean data)."""
    abar_next = schedule.alphas_cumprod[next_step].item() if next_step is not None else 1.0
    t = torch.full((x.size(0),), step, dtype=torch.long)
    x0 = schedule.predicted_x0(out, prediction, x, t)
    eps = schedule.predicted_eps(out, prediction, x, t)
    return math.sqrt(abar_next) * x0 + math.sqrt(max(0.0, 1 - abar_next)) * eps


@torch.no_grad()
def sample_ddim_cfg(model, schedule, x_T, cond_ids, uncond_ids, steps, scale, prediction):
    """diffusion::sample_ddim (eta 0) through classifier_free_guidance."""
    both = torch.cat([uncond_ids.expand_as(cond_ids), cond_ids])
    ts = sampling_timesteps(schedule.size(), steps)
    x = x_T
    for i, step in enumerate(ts):
        t = torch.full((x.size(0),), step, dtype=torch.long)
        x = ddim_step(schedule, x, guided_output(model, x, t, both, scale), step,
                      ts[i + 1] if i + 1 < len(ts) else None, prediction)
    return x


def diffusion_loss(schedule, out, x0, eps, t, min_snr_gamma, prediction):
    """diffusion_loss with Min-SNR-gamma weights: min(snr, gamma) / snr for eps,
    min(snr, gamma) / (snr + 1) for v."""
    target = schedule.target(prediction, x0, eps, t)
    if min_snr_gamma <= 0:
        return torch.nn.functional.mse_loss(out, target)
    per_sample = (out - target).square().flatten(1).mean(1)
    abar = schedule.alphas_cumprod.index_select(0, t)
    snr = abar / (1 - abar)
    weights = snr.clamp_max(min_snr_gamma) / (snr if prediction == 'eps' else snr + 1)
    return (per_sample * weights.to(per_sample.dtype)).mean()


def train_step(model, optimizer, schedule, x0, ids, t, eps, min_snr_gamma, grad_clip,
               prediction):
    """One optimizer step as train::train runs it (without EMA); returns (loss, grad norm)."""
    optimizer.zero_grad()
    out = model(schedule.add_noise(x0, eps, t), t, ids)
    loss = diffusion_loss(schedule, out, x0, eps, t, min_snr_gamma, prediction)
    value = loss.item()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return value, float(norm)


# --- files -----------------------------------------------------------------------------------

_DTYPES = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16,
           'BF16': torch.bfloat16, 'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16,
           'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool}


def load_safetensors(path):
    """{name: tensor} from a .safetensors file (core/safetensors.h's format: an 8-byte little-
    endian header length, a JSON header, then the raw little-endian data)."""
    import json
    import struct
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        begin, end = info['data_offsets']
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=_DTYPES[info['dtype']])
        out[name] = flat.reshape(info['shape'])
    return out


def load_strict(module, path):
    """Every parameter and buffer of `module` from the file, by name; missing, unexpected or
    mis-shaped names raise (load_state_dict(strict=True))."""
    module.load_state_dict(load_safetensors(path), strict=True)
    return module
