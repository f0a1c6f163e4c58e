"""Real-size architectures with random weights: seconds per step and the share of the FLOP floor.

Built locally from their published configurations (no download): the SD-1.5 / SD-Turbo UNet at
512² (64² latents), the AudioLDM-s UNet (10 s of audio: 8×256×16 latents, its 512-d CLAP
conditioning as a simple projection), open_clip's ViT-B-32 image tower at 224² and transformers'
``ClapConfig`` default (the HTSAT audio tower of LAION's CLAP, 10 s of 48 kHz mel frames). The FLOPs
of one forward pass are counted by ``torch.utils.flop_counter`` (plus the attention it misses on
the CPU, see :func:`count_flops`); the floor is those FLOPs at the
matmul peak measured in the same run (a large fp32 / bf16 matmul), so ``share`` says how near the
machine's limit each model runs. bf16 is autocast, reported only as measured (it is slow on CPUs
without native bf16 matmul).

    .venv/bin/python benchmarks/architectures.py [--models clip,clap,audioldm,sd] [--dtypes fp32,bf16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import describe_machine  # noqa: E402
from pairsynth.devices import parse_dtype  # noqa: E402

CPU = torch.device("cpu")


def sd_unet() -> tuple[torch.nn.Module, Callable[[], object]]:
    """SD-1.5's UNet (SD-Turbo shares the SD-2.1 layout at the same size), one CFG pair at 512²."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)
    latents, text = torch.randn(2, 4, 64, 64), torch.randn(2, 77, 768)
    return unet, lambda: unet(latents, 10, encoder_hidden_states=text)


def audioldm_unet() -> tuple[torch.nn.Module, Callable[[], object]]:
    """AudioLDM-s's UNet (model_channels 128, channel_mult 1,2,3,5, CLAP film conditioning), one CFG pair."""
    from diffusers import UNet2DConditionModel

    channels = (128, 256, 384, 640)
    unet = UNet2DConditionModel(
        sample_size=(256, 16), in_channels=8, out_channels=8, layers_per_block=2, block_out_channels=channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",), cross_attention_dim=channels,
        attention_head_dim=8, class_embed_type="simple_projection", projection_class_embeddings_input_dim=512,
        class_embeddings_concat=True)
    latents, clap = torch.randn(2, 8, 256, 16), torch.randn(2, 512)
    return unet, lambda: unet(latents, 10, encoder_hidden_states=None, class_labels=clap)


def clip_vit_b32() -> tuple[torch.nn.Module, Callable[[], object]]:
    """open_clip ViT-B-32's image tower, a batch of 4 images at 224²."""
    from pairsynth.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import open_clip

    model = open_clip.create_model("ViT-B-32")
    images = torch.randn(4, 3, 224, 224)
    return model, lambda: model.encode_image(images)


def clap_htsat() -> tuple[torch.nn.Module, Callable[[], object]]:
    """transformers' ClapModel default config (HTSAT audio tower), a batch of 4 fused 10 s inputs."""
    from transformers import ClapConfig, ClapModel

    model = ClapModel(ClapConfig())
    features = torch.randn(4, 1, 1001, 64)
    return model, lambda: model.get_audio_features(input_features=features)


MODELS = {"clip": (clip_vit_b32, 4, "image"), "clap": (clap_htsat, 4, "clip"), "audioldm": (audioldm_unet, 1, "step"),
          "sd": (sd_unet, 1, "step")}


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); without it bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def matmul_peak(dtype: torch.dtype, sizes: tuple[int, ...] = (1024, 2048), repeats: int = 6) -> float:
    """FLOP/s of the best of a few n×n matmuls in ``dtype`` (the best size: small ones miss the peak)."""
    best_rate = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        best_rate = max(best_rate, 2 * n**3 / best)
    return best_rate


def count_flops(run: Callable[[], object]) -> int:
    """FLOPs of ``run``, counting the two kinds of attention ``FlopCounterMode`` misses on the CPU.

    - nn.MultiheadAttention's fused inference path (``aten::_native_multi_head_attention``) is
      invisible to it: counted through it, ViT-B-32 is 5.9 GFLOP per image instead of 8.8 (its
      attention projections, a third of the work, go missing). It is turned off while counting.
    - the CPU kernel of ``scaled_dot_product_attention`` (diffusers' attention) has no formula; it
      gets SDPA's own (``sdpa_flop_count``), as the CUDA kernels have.
    """
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(query, key, value, *args, out_val=None, **kwargs) -> int:  # receives shapes
        return sdpa_flop_count(query, key, value)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            run()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="clip,clap,audioldm,sd")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--force-bf16", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(describe_machine())
    dtypes = args.dtypes.split(",")
    if "bf16" in dtypes and not native_bf16() and not args.force_bf16:
        print("bf16: skipped, this CPU has no native bf16 matmul (no avx512_bf16/amx_bf16 flag); --force-bf16 runs it")
        dtypes.remove("bf16")
    peaks = {dtype: matmul_peak(parse_dtype(dtype, CPU)) for dtype in dtypes}
    measured = []  # (model, dtype, seconds of the best run, FLOPs of one run)
    for name in args.models.split(","):
        build, per, unit = MODELS[name]
        model, run = build()
        model.eval()
        flops = count_flops(run)
        for dtype in dtypes:
            context = nullcontext() if dtype == "fp32" else torch.autocast("cpu", dtype=torch.bfloat16)
            with torch.inference_mode(), context:
                run()  # warm-up
                best = float("inf")
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    run()
                    best = min(best, time.perf_counter() - start)
            measured.append((name, dtype, best, flops))
            print(f"{name:<9} {dtype}: {best / per:8.3f} s per {unit}  load {os.getloadavg()[0]:.2f}", flush=True)
        del model
    # the peak again after the models, keeping the higher: this shared machine's speed drifts
    peaks = {dtype: max(peak, matmul_peak(parse_dtype(dtype, CPU))) for dtype, peak in peaks.items()}
    print("matmul peak (best of before and after): " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    shares = []
    for name, dtype, best, flops in measured:
        _, per, unit = MODELS[name]
        floor = flops / peaks[dtype]
        if dtype == "fp32":
            shares.append(floor / best)
        print(f"{name:<9} {dtype}: {best / per:8.3f} s per {unit}  ({flops / per / 1e9:7.1f} GFLOP each; floor "
              f"{floor / per:.3f} s: {floor / best:5.1%} of the matmul peak)")
    worst = min(shares)
    print(f"architectures: {worst:.0%} of the fp32 FLOP floor at worst (goal ≥ 70%: {'met' if worst >= 0.7 else 'not met'})")


if __name__ == "__main__":
    main()
