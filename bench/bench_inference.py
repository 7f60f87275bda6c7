"""Inference: the demo model on a synthetic 300-slice 512x512 chest CT series.

Prints, every figure measured in this run on this machine:
(a) the convolution GFLOP/s the model's forward passes achieve, as a fraction of this
    machine's fp32 matmul peak (goal >= 0.85);
(b) whole-job time (claim to finished: read and decode the series, forward, findings,
    saliency, SEG / Parametric Map / SR written and stored, bookkeeping) divided by the pure
    forward time within that job (goal <= 1.5);
(c) studies per hour with one and with two Celery workers consuming the inference queue
    (each worker gets cores / workers torch threads).
BENCH_INFERENCE_SLICES and BENCH_INFERENCE_SIZE shrink the series for a quick look;
BENCH_INFERENCE_MANIFEST names another model's manifest (default: the shipped demo model).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
SLICES = int(os.environ.get("BENCH_INFERENCE_SLICES", "300"))
SIZE = int(os.environ.get("BENCH_INFERENCE_SIZE", "512"))
STUDIES_PER_RUN = 2  # studies (series, one job each) queued for each worker count in (c)


def matmul_peak_gflops(device: str, *, tf32: bool = False) -> float:
    """Best fp32 matmul rate of this device (the anchor for (a)), in GFLOP/s; on CUDA with
    `tf32` the rate of TensorFloat-32 tensor cores instead (the math cuDNN convolutions may use).

    On a CPU the best of the two GEMMs torch carries: the BLAS behind `torch.matmul` (MKL) and
    oneDNN, which runs the convolutions. MKL takes its AVX2 path on AMD processors, half the
    AVX-512 rate of a Zen 4 or 5; oneDNN does not, so the BLAS alone would understate the
    machine's peak there (the convolutions then measured above it)."""
    import torch

    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        return _gemm_gflops(torch.matmul, 8192, device)
    rates = cpu_gemm_gflops()
    print("fp32 GEMM on this CPU: " + ", ".join(f"{name} {rate:.1f} GFLOP/s" for name, rate in rates.items()))
    return max(rates.values())


def cpu_gemm_gflops(n: int = 2048) -> dict[str, float]:
    """The best rate of an n x n fp32 matrix product through each CPU GEMM torch carries."""
    import torch
    from torch import nn
    from torch.utils import mkldnn

    rates = {"BLAS (torch.matmul)": _gemm_gflops(torch.matmul, n, "cpu")}
    if torch.backends.mkldnn.is_available():
        with torch.no_grad():
            linear = mkldnn.to_mkldnn(nn.Linear(n, n, bias=False))  # x @ W.T through oneDNN
            rates["oneDNN"] = _gemm_gflops(lambda a, _b: linear(a), n, "cpu", to_mkldnn=True)
    return rates


def _gemm_gflops(product, n: int, device: str, *, to_mkldnn: bool = False) -> float:
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    if to_mkldnn:
        a = a.to_mkldnn()
    best = 0.0
    with torch.no_grad():
        for _ in range(8):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            started = time.perf_counter()
            product(a, b)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def _series(seed: int, slices: int = SLICES):
    from fixtures.synthetic import make_ct_study
    from viewer.ingest.service import ingest_file
    from viewer.models import Series

    started = time.perf_counter()
    study = make_ct_study(
        seed=seed, slices=slices, rows=SIZE, columns=SIZE, lesions=3, spacing=(1.25, 0.7, 0.7)
    )
    print(f"generated {slices} slices of {SIZE}x{SIZE} in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    import io

    from inference.derived import to_part10_bytes

    for k, ds in enumerate(study.datasets):
        # As "derived", so the series is not queued for the models on its own: the benchmark
        # queues exactly the jobs it times.
        outcome = ingest_file(source=io.BytesIO(to_part10_bytes(ds)), name=f"{k}.dcm", origin="derived")
        if outcome.status == "rejected":
            raise RuntimeError(outcome.reason)
    print(f"ingested in {time.perf_counter() - started:.1f} s")
    return Series.objects.get(series_uid=study.series_uid)


def _model():
    from inference.models import ModelVersion
    from inference.registry import DEMO_MANIFEST, ModelDescription, model_register

    manifest = Path(os.environ.get("BENCH_INFERENCE_MANIFEST", DEMO_MANIFEST))
    description = ModelDescription.from_manifest(manifest)
    existing = ModelVersion.objects.filter(name=description.name, version=description.version).first()
    return existing or model_register(description=description, status="active")


def _one_job(series, warm_up, model) -> None:
    """(a) and (b) from one job run in this process, after a job on the short series `warm_up`."""
    import torch

    from inference.engine.flops import conv_flops
    from inference.engine.loading import load_network
    from inference.execution import job_execute
    from inference.models import InferenceJob
    from inference.registry import model_network_source
    from inference.services import job_request

    device = "cuda" if torch.cuda.is_available() else "cpu"
    before = matmul_peak_gflops(device)

    network = load_network(model_network_source(model), device)
    multiple = int(getattr(network, "size_multiple", 16))
    padded = -(-SIZE // multiple) * multiple
    flops = conv_flops(network, (SLICES, 1, padded, padded), device)

    # The job below is this process's second: it finds the network loaded and the tables and
    # modules the first job read (highdicom's IOD tables, 0.6 s) in memory, as every job after a
    # worker's first does.
    job_execute(job_pk=job_request(series=warm_up, model=model).pk, task_id="bench-warm-up")
    job = job_request(series=series, model=model)
    started = time.perf_counter()
    job_execute(job_pk=job.pk, task_id=f"bench-{job.pk}")
    whole = time.perf_counter() - started
    job = InferenceJob.objects.get(pk=job.pk)
    if job.status != "succeeded":
        raise RuntimeError(f"the job failed: {job.error}")
    # The anchor is measured on both sides of the job, and the higher taken: on a shared host
    # a clock or a neighbour that slows one measurement must not lower the peak (and so flatter
    # the ratio).
    after = matmul_peak_gflops(device)
    peak = max(before, after)
    where = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads"
    print(
        f"fp32 matmul peak: {peak:.1f} GFLOP/s on {device} ({where}; torch {torch.__version__}); "
        f"{before:.1f} before the job, {after:.1f} after"
    )
    forward = job.timings["forward"]
    achieved = flops / forward / 1e9
    stages = ", ".join(f"{name} {seconds:.2f}" for name, seconds in job.stage_timings())
    stages += f"; the rest (claim, progress, bookkeeping) {whole - sum(job.timings.values()):.2f}"
    print(f"job {job.pk}: {job.findings.count()} findings, score {job.study_score:.3f}; stages (s): {stages}")
    stored = ", ".join(f"{o.kind} {o.size_bytes / 1e6:.1f}" for o in job.outputs.order_by("kind"))
    print(f"outputs stored (MB): {stored}")
    print(
        f"(a) convolutions: {flops / 1e12:.2f} TFLOP in {forward:.2f} s forward = {achieved:.1f} GFLOP/s "
        f"= {achieved / peak:.2f} of the matmul peak (goal >= 0.85)"
    )
    print(f"(b) whole job {whole:.2f} s / forward {forward:.2f} s = {whole / forward:.2f} (goal <= 1.5)")
    if device == "cuda":
        _cuda_math_modes(network, model, padded, flops, peak)


def _cuda_math_modes(network, model, padded: int, flops: int, peak: float) -> None:
    """On CUDA, cuDNN runs fp32 convolutions on TF32 tensor cores unless told not to (PyTorch's
    default), while the fp32 matmul anchor does not: time the same forward passes both ways."""
    import torch

    from inference.registry import model_spec

    tf32_peak = matmul_peak_gflops("cuda", tf32=True)
    batch = model_spec(model).slices_per_pass("cuda")
    x = torch.randn(SLICES, 1, padded, padded, device="cuda").contiguous(memory_format=torch.channels_last)
    for allowed in (True, False):
        torch.backends.cudnn.allow_tf32 = allowed
        with torch.inference_mode():
            network(x[:batch])
            torch.cuda.synchronize()
            started = time.perf_counter()
            for start in range(0, SLICES, batch):
                network(x[start : start + batch])
            torch.cuda.synchronize()
        rate = flops / (time.perf_counter() - started) / 1e9
        mode = "TF32 allowed (the default)" if allowed else "strict fp32"
        print(
            f"(a) pure forward, convolutions {mode}: {rate:.1f} GFLOP/s = {rate / peak:.2f} of the fp32 "
            f"matmul peak, {rate / tf32_peak:.2f} of the TF32 matmul peak ({tf32_peak:.1f} GFLOP/s)"
        )
    torch.backends.cudnn.allow_tf32 = True


def _throughput(studies, model, workers: int) -> float:
    """(c): studies per hour with `workers` worker processes sharing this machine's cores."""
    from inference.models import InferenceJob
    from inference.services import job_request

    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "INFERENCE_TORCH_THREADS": str(threads)}
    log = Path(os.environ.get("OVERREAD_VAR_DIR", ROOT / "var" / "bench")) / "bench-workers.log"
    processes = [
        subprocess.Popen(
            [
                sys.executable, "-m", "celery", "--app", "config", "worker", "--queues", "inference",
                "--concurrency", "1", "--prefetch-multiplier", "1", "--hostname", f"bench{i}@%h",
                "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        for i in range(workers)
    ]  # fmt: skip
    try:
        time.sleep(3)  # the workers start and load torch before the clock starts
        started = time.perf_counter()
        from django.db import transaction

        with transaction.atomic():
            jobs = {job_request(series=series, model=model).pk for series in studies}
        if len(jobs) != len(studies):  # a request for a series already queued returns that job
            raise RuntimeError(f"{len(studies)} studies queued {len(jobs)} jobs")
        while InferenceJob.objects.filter(pk__in=jobs, finished_at__isnull=True).exists():
            time.sleep(0.2)
        wall = time.perf_counter() - started
        failed = InferenceJob.objects.filter(pk__in=jobs).exclude(status="succeeded").count()
        if failed:
            raise RuntimeError(f"{failed} jobs failed; see {log}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    rate = len(jobs) / wall * 3600
    print(
        f"(c) {workers} worker(s) x {threads} thread(s): {len(jobs)} studies in {wall:.1f} s "
        f"= {rate:.0f} studies/hour"
    )
    return rate


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    model = _model()
    # One series per study of (c): the same series asked for twice while its job is queued
    # gets that one job (a double-click is not a second study).
    studies = [_series(4242 + k) for k in range(STUDIES_PER_RUN)]
    _one_job(studies[0], _series(4241, slices=48), model)
    one = _throughput(studies, model, 1)
    two = _throughput(studies, model, 2)
    print(f"(c) two workers / one worker: {two / one:.2f}x")


if __name__ == "__main__":
    main()
