"""One differentiable search: bilevel optimisation of weights and architecture.

First order: weights step on a training batch, architecture (alpha, beta) step on a
validation batch, each with its own optimizer; architecture steps start after a warm-up.
Checkpointed every epoch, so an interrupted search resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from search import data
from search.darts import costs
from search.darts.early_stopping import EarlyStopping
from search.darts.supernet import CELL_TYPES, build_supernet, derive_genotype
from zoo.models import ubnas


@dataclass
class DartsConfig:
    epochs: int = 20
    batch_size: int = 64
    layers_count: int = 5
    channels: int = 8
    stem_strides: int = 1
    k_normal: int = 4
    k_reduce: int = 2
    warmup_epochs: int = 2
    weight_lr: float = 2e-3
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    max_parameter_free: Optional[int] = 2  # None: rule off
    patience: Optional[int] = 3  # None: rule off
    seed: int = 0
    operations: tuple = ubnas.EBNAS_OPERATIONS  # what an edge can become (zoo.models.ubnas)
    cost_weight: float = 0.0  # > 0: the architecture loss adds the expected cost (costs.py)
    cost_channels: int = 16  # operations are priced at the retrained network's first cells


class BilevelSearch:
    def __init__(self, config: DartsConfig, input_shape, num_classes):
        self.config = config
        self.model, self.arch = build_supernet(
            input_shape, num_classes, layers_count=config.layers_count,
            channels=config.channels, k_normal=config.k_normal, k_reduce=config.k_reduce,
            stem_strides=config.stem_strides, seed=config.seed, operations=config.operations)
        arch_refs = {v.ref() for v in self.arch.variables_list()}
        self.arch_variables = self.arch.variables_list()
        self.weight_variables = [v for v in self.model.trainable_variables if v.ref() not in arch_refs]
        self.weight_optimizer = tf.keras.optimizers.Adam(config.weight_lr)
        self.arch_optimizer = tf.keras.optimizers.AdamW(
            config.arch_lr, beta_1=0.5, beta_2=0.999, weight_decay=config.arch_weight_decay)
        self.loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
        self.weight_optimizer.build(self.weight_variables)
        self.arch_optimizer.build(self.arch_variables)

    def _step(self, images, labels, variables, optimizer, price=None):
        with tf.GradientTape() as tape:
            probs = self.model(images, training=True)
            loss = self.loss_fn(labels, probs)
            if price is not None:
                loss += self.config.cost_weight * costs.expected_cost(
                    self.arch, price, self.normal_fraction)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        correct = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=labels.dtype), labels), tf.float32))
        return loss, correct

    @tf.function
    def weight_step(self, images, labels):
        return self._step(images, labels, self.weight_variables, self.weight_optimizer)

    @tf.function
    def arch_step(self, images, labels):
        return self._step(images, labels, self.arch_variables, self.arch_optimizer,
                          self.operation_costs if self.config.cost_weight else None)

    @property
    def normal_fraction(self) -> float:
        cells = self.config.layers_count
        return (cells - len(ubnas.reduction_layers(cells))) / cells

    def price_operations(self, input_shape, recorded=None) -> dict:
        """Measured once per search (a resumed search reuses the recorded prices)."""
        if recorded is None:
            size = -(-input_shape[0] // self.config.stem_strides)
            recorded = costs.measure(self.arch.primitives[1:], self.config.cost_channels, size)
        self.operation_costs = recorded
        return recorded

    def alphas(self) -> dict:
        return {c: tf.nn.softmax(self.arch.alpha[c]).numpy().tolist() for c in CELL_TYPES}

    def run(self, train, val, output_dir: Path, log=print) -> dict:
        """Search; return the genotype, per-epoch history, stop reason and CPU seconds."""
        cfg = self.config
        output_dir.mkdir(parents=True, exist_ok=True)
        epoch_var = tf.Variable(0, dtype=tf.int64)
        checkpoint = tf.train.Checkpoint(model=self.model, weights_opt=self.weight_optimizer,
                                         arch_opt=self.arch_optimizer, epoch=epoch_var)
        manager = tf.train.CheckpointManager(checkpoint, str(output_dir / "checkpoint"), 1)
        state_path = output_dir / "history.json"
        state = {"config": asdict(cfg), "epochs": [], "stopped": None}
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint)
            state = json.loads(state_path.read_text())
            state["epochs"] = state["epochs"][: int(epoch_var.numpy())]
            log(f"darts: resumed after epoch {int(epoch_var.numpy())}")
        if cfg.cost_weight:
            state["operation_costs"] = self.price_operations(train[0].shape[1:],
                                                             state.get("operation_costs"))
            log("darts: relative training cost per operation: " + ", ".join(
                f"{name} {cost:.2f}" for name, cost in state["operation_costs"].items()))
        stopper = EarlyStopping(cfg.max_parameter_free, cfg.patience,
                                [e["genotype"] for e in state["epochs"] if e["arch_updates"]])
        rng = np.random.default_rng(cfg.seed)
        (train_x, train_y), (val_x, val_y) = train, val
        steps = len(train_x) // cfg.batch_size
        while int(epoch_var.numpy()) < cfg.epochs and not state["stopped"]:
            epoch = int(epoch_var.numpy())
            start_cpu, start = time.process_time(), time.perf_counter()
            order, val_order = rng.permutation(len(train_x)), rng.permutation(len(val_x))
            update_arch = epoch >= cfg.warmup_epochs
            losses, accs = [], []
            for step in range(steps):
                batch = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                loss, acc = self.weight_step(train_x[batch], train_y[batch])
                losses.append(float(loss))
                accs.append(float(acc))
                if update_arch:
                    vb = val_order[(step * cfg.batch_size) % len(val_x):][:cfg.batch_size]
                    self.arch_step(val_x[vb], val_y[vb])
            genotype = derive_genotype(self.arch)
            row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "accuracy": float(np.mean(accs)),
                   "val_accuracy": self.accuracy(val_x, val_y), "arch_updates": update_arch,
                   "genotype": genotype, "alpha": self.alphas(),
                   "genotype_cost": (costs.genotype_cost(genotype, self.operation_costs)
                                     if cfg.cost_weight else None),
                   "cpu_seconds": time.process_time() - start_cpu,
                   "seconds": time.perf_counter() - start}
            state["epochs"].append(row)
            if update_arch:
                state["stopped"] = stopper.update(genotype)
            epoch_var.assign(epoch + 1)
            state_path.write_text(json.dumps(state))
            manager.save()
            log(f"darts epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.3f} train acc "
                f"{100 * row['accuracy']:.1f}% val acc {100 * row['val_accuracy']:.1f}% "
                f"({row['seconds']:.0f} s){'  stop: ' + state['stopped'] if state['stopped'] else ''}")
        state["genotype"] = state["epochs"][-1]["genotype"]
        state["cpu_seconds"] = sum(e["cpu_seconds"] for e in state["epochs"])
        state_path.write_text(json.dumps(state))
        return state

    def accuracy(self, images, labels) -> float:
        return data.accuracy(lambda x: self.model(x, training=False), images, labels)
