"""Train the two-tower AlexNet (Krizhevsky, Sutskever & Hinton 2012) with minigrad.

With no arguments it trains on the built-in dataset (ten classes of shapes, generated on first use),
on the GPU if CuPy sees one, else on the CPU with a small preset of the same architecture (both
towers, LRN, overlapping pooling, dropout) that finishes in a few minutes.

    python examples/train_alexnet.py                                  # the built-in dataset, auto device
    python examples/train_alexnet.py --device cuda --preset full --data /data/imagenet   # the paper's network
    python examples/train_alexnet.py --resume runs/alexnet/last.npz   # continue (also after Ctrl-C)
    python examples/train_alexnet.py --eval-only runs/alexnet/best.npz --ten-crop

--data DIR holds DIR/train/<class>/<image> and DIR/val/<class>/<image> (ImageNet's layout).
The recipe is the paper's (§5): SGD, momentum 0.9, weight decay 0.0005, learning rate divided by 10
when the validation error stops improving; data as in §2 and §4.1 (shorter side resized, centre
square, mean subtracted, random crops, flips, PCA colour noise).  Everything lands in --out:
last.npz (every epoch and on Ctrl-C), best.npz, metrics.csv, curves.png and conv1_filters.png.
"""
from __future__ import annotations

import argparse
import csv
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

import minigrad as mg  # noqa: E402
from minigrad import backend  # noqa: E402
from minigrad.data import (DataLoader, ImageCache, ImageFolder, Preprocess, UnreadableImage,  # noqa: E402
                           default_workers, image_statistics, make_builtin_dataset)
from minigrad.data.builtin import cache_home  # noqa: E402
from minigrad.parallel import DataParallel  # noqa: E402
from minigrad.data import transforms as T  # noqa: E402
from models.alexnet import INITS, AlexNet  # noqa: E402

# Settings that depend on the preset; a flag given on the command line wins.
PRESETS = {
    "cpu": dict(width=0.25, input_size=67, batch_size=64, epochs=20, lr=0.02),     # small, same architecture
    "full": dict(width=1.0, input_size=227, batch_size=128, epochs=90, lr=0.01),   # the paper's network
    "tiny": dict(width=0.125, input_size=67, batch_size=32, epochs=2, lr=0.02),    # seconds; for tests
}
CHECKPOINT_FORMAT = "minigrad-alexnet/1"


class TrainingDiverged(RuntimeError):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    return make_parser().parse_args(argv)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="folder with train/ and val/ in the ImageFolder layout "
                                             "(default: the built-in dataset, generated on first use)")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N; auto = cuda if CuPy sees a GPU, else cpu")
    p.add_argument("--preset", choices=sorted(PRESETS), help="cpu: width 0.25 at 67×67 (default on a CPU); "
                                                             "full: the paper's network at 227×227 (default on a GPU); "
                                                             "tiny: a seconds-long run for tests")
    p.add_argument("--epochs", type=int, help="epochs to train in all (cpu 20, full 90)")
    p.add_argument("--batch-size", type=int, help="images per step (cpu 64, full 128 as in the paper)")
    p.add_argument("--lr", type=float, help="initial learning rate ε (paper: 0.01)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default 0.0005)")
    p.add_argument("--init", choices=sorted(INITS), default="he",
                   help="weight initialisation (default he; see models/alexnet.py for why)")
    p.add_argument("--width", type=float, help="scale every layer's filters/units (overrides the preset)")
    p.add_argument("--input-size", type=int, help="crop size fed to the network (overrides the preset; 32k+3)")
    p.add_argument("--towers", type=int, choices=[1, 2], default=2, help="2: the paper's two towers (default)")
    p.add_argument("--workers", type=int, help="processes that decode and augment images; 0 = in this process "
                   "(default: one per core beside a GPU; on the CPU none up to 2 cores, else half the cores)")
    p.add_argument("--processes", type=int, help="processes that train, each on a shard of every batch, one core "
                   "each (minigrad.parallel; default: as the checkpoint when resuming, else one per core for the "
                   "cpu and tiny presets on the CPU, in shards of 16 images or more, else 1)")
    p.add_argument("--cache", choices=["auto", "on", "off"], default="auto",
                   help="keep decoded images in one uint8 file after the first pass (auto: when it takes ≤ 4 GiB)")
    p.add_argument("--cache-dir", type=Path, default=cache_home() / "images", help="where the cache files go")
    p.add_argument("--patience", type=int, default=2,
                   help="epochs without a better validation error before the lr is divided by 10 (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, data order, augmentation and dropout")
    p.add_argument("--out", type=Path, default=Path("runs/alexnet"), help="folder for checkpoints, metrics and pictures")
    p.add_argument("--resume", type=Path, help="continue training from this checkpoint")
    p.add_argument("--eval-only", type=Path, metavar="CHECKPOINT", help="only evaluate this checkpoint on val/")
    p.add_argument("--ten-crop", action="store_true", help="evaluate on the average of 10 crops (corners, centre, flips)")
    p.add_argument("--mean", choices=["channel", "pixel"], default="channel",
                   help="subtract the per-channel mean (default) or the paper's per-pixel mean image")
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image instead of skipping it")
    return p


# ----- set-up ------------------------------------------------------------------------------------
def choose_device(name: str) -> str:
    if name != "auto":
        backend.parse_device(name)   # a clear error now rather than in the first layer
        return name
    return "cuda" if backend.cuda_available() else "cpu"


def settings_from(args, device: str, saved: dict | None = None) -> dict:
    """The run's settings: the checkpoint's (when resuming), else the preset's, then the flags given."""
    if saved is not None:
        config = dict(saved)
    else:
        preset = args.preset or ("full" if device.startswith("cuda") else "cpu")
        config = dict(PRESETS[preset], preset=preset, towers=args.towers, init=args.init, seed=args.seed,
                      momentum=args.momentum, weight_decay=args.weight_decay, patience=args.patience, mean=args.mean)
        for key in ("width", "input_size", "lr"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
    for key in ("epochs", "batch_size"):       # may change on resume (e.g. train for longer)
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    config["data"] = str(args.data) if args.data else config.get("data")
    return config


def dataset_root(config: dict) -> Path:
    if config.get("data"):
        root = Path(config["data"])
        for split in ("train", "val"):
            if not (root / split).is_dir():
                raise SystemExit(f"error: --data {root} has no {split}/ folder; expected {root}/train/<class>/<image> "
                                 f"and {root}/val/<class>/<image>")
        return root
    return make_builtin_dataset()


def loader_workers(args, device) -> int:
    """--workers if given, else what suits the device (minigrad.data.default_workers)."""
    return default_workers(device) if args.workers is None else max(0, args.workers)


def data_parallel(model, args, config, device) -> DataParallel:
    """The model's steps split over --processes processes; without the flag, the number the checkpoint was
    trained with (on the CPU), else one per core for the small presets on the CPU, in shards of 16 images or
    more: there one process leaves most arrays too small to share between cores (measured on 2 cores, the
    cpu preset's step 45-48 ms in one process, 35-38 in two; more cores are not measured).  One for the full
    network, whose large arrays keep every core busy in one process (916-940 ms a step at batch 32,
    1050-1060 in two), and on a GPU.  The number is recorded in the config: it decides the dropout masks."""
    cuda = device.startswith("cuda")
    if args.processes is not None:
        processes = args.processes
    elif config.get("processes") and not cuda:
        processes = config["processes"]           # resuming: the same split, so the same run
        if processes > backend.cpu.CORES:
            print(f"note: the checkpoint was trained in {processes} processes, more than this machine's "
                  f"{backend.cpu.CORES} cores; keeping them (the same run), --processes changes it", file=sys.stderr)
    elif config["preset"] != "full" and not cuda:
        processes = max(1, min(backend.cpu.CORES, config["batch_size"] // 16))
    else:
        processes = 1
    try:
        parallel = DataParallel(model, processes)
    except (ValueError, RuntimeError) as err:
        if args.processes is not None or processes == 1:
            raise SystemExit(f"error: --processes {processes}: {err}") from None
        print(f"note: {err}\nRunning in one process instead.", file=sys.stderr)
        parallel = DataParallel(model, 1)
    config["processes"] = parallel.processes
    return parallel


def image_source(folder: ImageFolder, args, label: str, workers: int):
    """The folder itself, or its decoded cache (built now if needed)."""
    size_bytes = len(folder) * folder.size * folder.size * 3
    if args.cache == "off" or (args.cache == "auto" and size_bytes > 4 * 2**30):
        return folder
    cache = ImageCache(folder, args.cache_dir)
    if not cache.exists():
        print(f"Caching the decoded {label} images ({size_bytes / 2**20:.0f} MiB) in {cache.array_path} ...", flush=True)
        with DataLoader(folder, None, 1, workers=workers) as loader:
            cache.build(progress(loader.decoded_images(), total=len(folder), desc=f"cache {label}"))
    return cache


def progress(iterable, **kwargs):
    """tqdm's progress bar when the output is a terminal (it is quiet in logs and tests)."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None, dynamic_ncols=True, **kwargs)


# ----- training ----------------------------------------------------------------------------------
def top_k_errors(scores: np.ndarray, labels: np.ndarray, k: int = 5) -> tuple[int, int]:
    """Numbers of images whose label is not the top-1 guess, and not among the top-k guesses."""
    top = np.argsort(-scores, axis=1)[:, :k]
    return int((top[:, 0] != labels).sum()), int((top != labels[:, None]).all(axis=1).sum())


def evaluate(parallel: DataParallel, loader: DataLoader) -> dict:
    """Validation loss and top-1/top-5 error; with ten-crop batches, the softmax averaged over the crops.

    top-5 is None with 5 classes or fewer (it would always be 0).  Non-finite outputs raise TrainingDiverged.
    """
    parallel.model.eval()
    loss = top1 = top5 = count = 0
    for batch in progress(loader.batches(), total=len(loader), desc="validate", leave=False):
        images = batch.images
        crops = images.shape[1] if images.ndim == 5 else 1
        logits = parallel.predict(images.reshape(-1, *images.shape[-3:]))
        if not np.isfinite(logits).all():
            raise TrainingDiverged("the network's outputs on the validation images are not finite (NaN or inf)")
        logits = logits.reshape(len(batch.labels), crops, -1).astype(np.float64)
        probs = np.exp(logits - logits.max(axis=2, keepdims=True))
        probs = (probs / probs.sum(axis=2, keepdims=True)).mean(axis=1)
        loss -= np.log(probs[np.arange(len(batch.labels)), batch.labels] + 1e-12).sum()
        e1, e5 = top_k_errors(probs, batch.labels)
        top1, top5, count = top1 + e1, top5 + e5, count + len(batch.labels)
    if count == 0:
        raise SystemExit("error: none of the validation images could be read (see the warnings above)")
    classes = probs.shape[1]
    return {"val_loss": loss / count, "val_top1_error": top1 / count,
            "val_top5_error": top5 / count if classes > 5 else None}


class StopRequest:
    """Ctrl-C asks the loop to stop after the current step (so the checkpoint is consistent); twice stops at once."""

    def __init__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving a checkpoint (press again to quit at once)",
              file=sys.stderr, flush=True)

    def restore(self):
        signal.signal(signal.SIGINT, self.previous)


def save_checkpoint(path: Path, model, optimizer, schedule, config, classes, stats, history, epoch, best_error,
                    position=None) -> None:
    """position: mid-epoch only, {"next_batch", "batch_size", "train_images", and the epoch's running sums}."""
    mg.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "config": config, "classes": classes, "stats": stats,
             "history": history, "epoch": epoch, "position": position, "best_val_error": best_error}, path)


def load_checkpoint(path: Path) -> dict:
    checkpoint = mg.load(path)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"error: {path} is a minigrad file but not an AlexNet training checkpoint "
                         f"(format {checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    return checkpoint


def write_pictures(out: Path, history: list, model) -> None:
    """curves.png and conv1_filters.png, after every epoch.  The figure is drawn with matplotlib's object API,
    not pyplot (which keeps figures in global state): 0.13 s an epoch instead of 0.25, measured on 2 cores."""
    from matplotlib.figure import Figure
    from PIL import Image

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    left.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    left.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    right.plot(epochs, [100 * h["val_top1_error"] for h in history], "o-", label="top-1 (validation)")
    if history[0]["val_top5_error"] is not None:
        right.plot(epochs, [100 * h["val_top5_error"] for h in history], "o-", label="top-5 (validation)")
    right.plot(epochs, [100 * (1 - h["train_top1"]) for h in history], "o--",
               label="top-1 (training, running, dropout on)")
    right.set(xlabel="epoch", ylabel="error (%)", title="error", ylim=(0, 100))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    filters = [tower.conv1.weight for tower in model.towers]   # the paper's Figure 3: the towers side by side
    Image.fromarray(mg.viz.filter_grid(filters, zoom=max(2, 44 // filters[0].shape[-1]))).save(out / "conv1_filters.png")


def train(args) -> int:
    device = choose_device(args.device)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"error: cannot use --out {args.out}: {err}") from None
    resumed = load_checkpoint(args.resume) if args.resume else None
    config = settings_from(args, device, resumed["config"] if resumed else None)
    root = dataset_root(config)
    resize = T.resize_for_crop(config["input_size"])
    train_folder, val_folder = ImageFolder(root / "train", resize), ImageFolder(root / "val", resize)
    if train_folder.classes != val_folder.classes:
        raise SystemExit(f"error: train/ and val/ have different classes ({len(train_folder.classes)} and "
                         f"{len(val_folder.classes)}); they must have the same class folders")
    classes = train_folder.classes
    if resumed and resumed["classes"] != classes:
        raise SystemExit(f"error: {args.resume} was trained on other classes than {root}")
    if len(train_folder) < config["batch_size"]:
        raise SystemExit(f"error: the training set has {len(train_folder)} images, fewer than one batch "
                         f"({config['batch_size']}); use --batch-size {len(train_folder)} or less")
    position = resumed["position"] if resumed else None
    if position and (position["batch_size"] != config["batch_size"] or position["train_images"] != len(train_folder)):
        raise SystemExit(f"error: {args.resume} stopped in the middle of an epoch (batch {position['next_batch']} of "
                         f"{position['batch_size']} images, {position['train_images']} training images); resume it "
                         f"with the same --batch-size and data, or from a checkpoint saved at the end of an epoch")

    print(f"device {device}; preset '{config['preset']}': AlexNet with {config['towers']} tower(s), width "
          f"{config['width']}, input {config['input_size']}×{config['input_size']}, batch {config['batch_size']}, "
          f"{config['epochs']} epochs, lr {config['lr']}, init '{config['init']}'")
    print(f"data {root}: {len(train_folder)} training and {len(val_folder)} validation images, {len(classes)} classes")
    if config["preset"] != "full":
        print("(the paper's network: python examples/train_alexnet.py --device cuda --preset full --data DIR)")

    if resumed:
        stats = {k: v.numpy() for k, v in resumed["stats"].items()}
    else:
        s = image_statistics(train_folder, count=1000, seed=config["seed"])
        stats = {k: s[k] for k in ("std", "eigenvalues", "eigenvectors")}
        stats["mean"] = s["pixel_mean"] if config["mean"] == "pixel" else s["mean"]   # (S, S, 3) or (3,)
    pca = (stats["eigenvalues"], stats["eigenvectors"])
    train_pre = Preprocess(config["input_size"], stats["mean"], stats["std"], "train", pca)
    val_pre = Preprocess(config["input_size"], stats["mean"], stats["std"], "ten-crop" if args.ten_crop else "eval")
    workers = loader_workers(args, device)
    train_source = image_source(train_folder, args, "training", workers)
    val_source = image_source(val_folder, args, "validation", workers)

    mg.manual_seed(config["seed"])
    model = AlexNet(len(classes), config["towers"], config["width"], config["input_size"], init=config["init"]).to(device)
    optimizer = mg.optim.SGD(model.parameters(), config["lr"], config["momentum"], config["weight_decay"])
    schedule = mg.optim.ReduceLROnPlateau(optimizer, factor=0.1, patience=config["patience"])
    history, epoch, best_error = [], 0, float("inf")
    if resumed:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        schedule.load_state_dict(resumed["schedule"])
        history, epoch, best_error = resumed["history"], resumed["epoch"], resumed["best_val_error"]
        if args.lr is not None:        # e.g. after a diverged run: continue with a lower learning rate
            optimizer.lr = args.lr
        print(f"resumed from {args.resume}: epoch {epoch + 1}, batch {position['next_batch'] if position else 0}, "
              f"learning rate {optimizer.lr:g}")
    last, best = args.out / "last.npz", args.out / "best.npz"

    def save(path, epoch, position=None):
        save_checkpoint(path, model, optimizer, schedule, config, classes, stats, history, epoch, best_error, position)

    train_loader = DataLoader(train_source, train_pre, config["batch_size"], shuffle=True, seed=config["seed"],
                              workers=workers, strict=args.strict, drop_last=True)
    val_loader = DataLoader(val_source, val_pre, config["batch_size"], workers=workers, strict=args.strict)
    parallel = data_parallel(model, args, config, device)
    stop = StopRequest()
    try:
        while epoch < config["epochs"]:
            model.train()
            # the epoch's running sums (carried over when resuming in the middle of an epoch)
            run = dict(position or {"next_batch": 0, "seen": 0, "loss_sum": 0.0, "correct": 0, "seconds": 0.0})
            start = None
            batches = train_loader.batches(epoch, run["next_batch"])
            bar = progress(batches, total=len(train_loader) - run["next_batch"],
                           desc=f"epoch {epoch + 1}/{config['epochs']}")
            for step, batch in enumerate(bar, start=run["next_batch"]):
                start = start or time.perf_counter()   # from the first batch on: worker start-up is not training
                # Forward, loss and backward, each process on a shard of the batch (minigrad/parallel.py);
                # this one loads the next batch while the others start. Dropout masks from (seed, epoch, step):
                # the same after any resume, and with one process the same on every device.
                optimizer.zero_grad()
                value, logits = parallel.loss_and_gradients(
                    batch.images, batch.labels, seed=(config["seed"] * 1_000_003 + epoch) * 1_000_003 + step,
                    meanwhile=batches.load_next)
                if not np.isfinite(value):
                    raise TrainingDiverged(f"the loss became {value} at epoch {epoch + 1}, batch {step + 1}")
                optimizer.step()
                run["seen"] += len(batch.labels)
                run["loss_sum"] += value * len(batch.labels)
                run["correct"] += int((logits.argmax(axis=1) == batch.labels).sum())
                run["next_batch"] = step + 1
                elapsed = run["seconds"] + time.perf_counter() - start
                bar.set_postfix(loss=f"{run['loss_sum'] / run['seen']:.3f}", train_acc=f"{run['correct'] / run['seen']:.1%}",
                                img_s=f"{run['seen'] / max(elapsed, 1e-9):.0f}")
                if stop.requested:
                    run["seconds"] = elapsed
                    save(last, epoch, dict(run, batch_size=config["batch_size"], train_images=len(train_folder)))
                    print(f"Stopped at epoch {epoch + 1}, batch {step + 1}; saved {last}.\nResume with: "
                          f"python examples/train_alexnet.py --resume {last}")
                    return 130
            train_seconds = run["seconds"] + (time.perf_counter() - start if start else 0.0)
            position = None
            val_start = time.perf_counter()
            result = evaluate(parallel, val_loader)
            row = {"epoch": epoch + 1, "train_loss": run["loss_sum"] / run["seen"], "train_top1": run["correct"] / run["seen"],
                   **result, "lr": optimizer.lr, "seconds": train_seconds, "images_per_s": run["seen"] / train_seconds}
            history.append(row)
            lowered = schedule.step(result["val_top1_error"])
            epoch += 1
            improved = result["val_top1_error"] < best_error
            best_error = min(best_error, result["val_top1_error"])
            save(last, epoch)
            if improved:
                save(best, epoch)
            print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}  val top-1 error "
                  f"{row['val_top1_error']:6.2%}  top-5 error {percent(row['val_top5_error'], 6)}  lr {row['lr']:.4g}  train {train_seconds:5.1f} s "
                  f"({row['images_per_s']:.0f} img/s), val {time.perf_counter() - val_start:.1f} s"
                  + ("  *best" if improved else ""), flush=True)
            if lowered:
                print(f"  validation error stopped improving: learning rate divided by 10 -> {optimizer.lr:g}")
            write_metrics(args.out / "metrics.csv", history)
            write_pictures(args.out, history, model)
            for loader in (train_loader, val_loader):
                if loader.unreadable:
                    print(f"  {len(loader.unreadable)} unreadable image(s) skipped so far, e.g. "
                          f"{next(iter(loader.unreadable))}")
    except TrainingDiverged as err:
        print(f"error: {err} (learning rate {optimizer.lr:g}). The learning rate is probably too high: try "
              f"--lr {optimizer.lr / 10:g}. Nothing was saved after the last good checkpoint "
              f"({last if last.exists() else 'none yet'}).", file=sys.stderr)
        return 1
    finally:
        stop.restore()
        parallel.close()
        train_loader.close()
        val_loader.close()
    print(f"done: best validation top-1 error {best_error:.2%}; checkpoints, metrics.csv, curves.png and "
          f"conv1_filters.png in {args.out}")
    return 0


def write_metrics(path: Path, history: list) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def evaluate_only(args) -> int:
    checkpoint = load_checkpoint(args.eval_only)
    config = checkpoint["config"]
    if args.data:
        config["data"] = str(args.data)
    device = choose_device(args.device)
    resize = T.resize_for_crop(config["input_size"])
    val_folder = ImageFolder(dataset_root(config) / "val", resize)
    if val_folder.classes != checkpoint["classes"]:
        raise SystemExit(f"error: the validation classes differ from the ones {args.eval_only} was trained on")
    stats = {k: v.numpy() for k, v in checkpoint["stats"].items()}
    model = AlexNet(len(val_folder.classes), config["towers"], config["width"], config["input_size"])
    model.load_state_dict(checkpoint["model"])
    model.to(device)
    mode = "ten-crop" if args.ten_crop else "eval"
    with DataLoader(val_folder, Preprocess(config["input_size"], stats["mean"], stats["std"], mode),
                    config["batch_size"], workers=loader_workers(args, device), strict=args.strict) as loader, \
            data_parallel(model, args, config, device) as parallel:
        result = evaluate(parallel, loader)
    print(f"{args.eval_only} ({'10 crops' if args.ten_crop else 'centre crop'}, {len(val_folder)} images): "
          f"top-1 error {result['val_top1_error']:.2%}, top-5 error {percent(result['val_top5_error'])}, "
          f"loss {result['val_loss']:.4f}")
    return 0


def percent(error, width=0) -> str:
    """An error rate for printing; top-5 error is None when there are 5 classes or fewer."""
    return "n/a" if error is None else f"{error:{width}.2%}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return evaluate_only(args) if args.eval_only else train(args)
    except UnreadableImage as err:   # only with --strict
        print(f"error: unreadable image {err.path} ({err.reason}); without --strict it would be skipped",
              file=sys.stderr)
        return 1
    except TrainingDiverged as err:  # --eval-only on a checkpoint whose weights are not finite
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
