"""Knowledge distillation: train a student on the labels and on a frozen teacher's softened
predictions (Hinton et al., 2015). Binary networks gain from it because a teacher's
"this shirt looks like a T-shirt" carries more than a one-hot label; Real-to-Binary
and ReActNet train with it.

`train.py --teacher NAME` wraps the student in a `Distiller`; the student alone is what is
saved, exported and shipped. `--teacher A B C` distils from the ensemble of several models
(an ensemble of networks is a better teacher than any of them, and born-again networks
show that a student can pass teachers of its own size). `--cache-teacher` runs the teacher
once on the unaugmented images instead of on every batch, so that distilling costs no more
training time than training without a teacher.
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

import zoo
from training import datasets
from zoo import weights as weights_io


def log_probabilities(probabilities):
    """The zoo's models end in a softmax; their log-probabilities are logits up to a
    constant, which a softmax ignores."""
    return tf.math.log(tf.clip_by_value(probabilities, 1e-12, 1.0))


def softened(probabilities, temperature: float):
    """A temperature softens the logits, so it can soften log-probabilities directly."""
    return tf.nn.softmax(log_probabilities(probabilities) / temperature, axis=-1)


class Distiller(tf.keras.Model):
    """Loss = (1 - weight) * the compiled loss on labels
             + weight * temperature² * KL(teacher's softened || student's softened).

    The temperature² factor keeps the soft term's gradients on the scale of the hard one's.
    "loss" is the label loss alone, comparable with undistilled runs; "distillation_loss"
    is the soft term. Predictions are the student's alone, so validation scores are its own.
    """

    def __init__(self, student, teacher, *, weight: float = 0.5, temperature: float = 4.0):
        super().__init__(name=student.name)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"The distillation weight must lie in [0, 1], got {weight}.")
        if temperature <= 0:
            raise ValueError(f"The distillation temperature must be positive, got {temperature}.")
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.weight, self.temperature = weight, temperature
        self.soft_loss_tracker = tf.keras.metrics.Mean(name="distillation_loss")
        self.build(student.input_shape)  # BackupAndRestore restores only a built model

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def metrics(self):
        return [*super().metrics, self.soft_loss_tracker]

    def soft_loss(self, images, predictions, teacher_predictions=None):
        """`teacher_predictions`: cached ones (`with_teacher_predictions`); else the teacher
        runs on `images`."""
        if teacher_predictions is None:
            teacher_predictions = self.teacher(images, training=False)
        targets = softened(teacher_predictions, self.temperature)
        per_example = tf.keras.losses.kl_divergence(
            targets, softened(predictions, self.temperature))
        return self.temperature**2 * tf.nn.compute_average_loss(per_example)

    @staticmethod
    def unpack(data):
        """(images, labels), or ((images, the teacher's cached predictions), labels)."""
        inputs, labels = data
        images, *cached = inputs if isinstance(inputs, tuple) else (inputs,)
        return images, labels, cached

    def train_step(self, data):
        images, labels, cached = self.unpack(data)
        with tf.GradientTape() as tape:
            predictions = self.student(images, training=True)
            hard = self.compiled_loss(labels, predictions,
                                      regularization_losses=self.student.losses)
            soft = self.soft_loss(images, predictions, *cached)
            loss = (1.0 - self.weight) * hard + self.weight * soft
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._update_metrics(labels, predictions, soft)

    def test_step(self, data):  # also scores how far the student is from its teacher
        images, labels, cached = self.unpack(data)
        predictions = self.student(images, training=False)
        self.compiled_loss(labels, predictions, regularization_losses=self.student.losses)
        return self._update_metrics(labels, predictions,
                                    self.soft_loss(images, predictions, *cached))

    def _update_metrics(self, labels, predictions, soft):
        self.compiled_metrics.update_state(labels, predictions)
        self.soft_loss_tracker.update_state(soft)
        return {metric.name: metric.result() for metric in self.metrics}


class Ensemble(tf.keras.Model):
    """Several frozen models as one teacher: the geometric mean of their probabilities
    (the softmax of their mean log-probability, i.e. of their mean logits)."""

    def __init__(self, members):
        super().__init__(name="ensemble")
        self.members = list(members)

    def call(self, inputs, training=None):
        summed = tf.add_n([log_probabilities(member(inputs, training=False))
                           for member in self.members])
        return tf.nn.softmax(summed / len(self.members), axis=-1)


def load_teacher(names: list, weights_file: str | None, spec, input_shape,
                 student_preprocessing: str):
    """`load_member` for one name; for several, their `Ensemble`, described member by member."""
    loaded = [load_member(name, weights_file, spec, input_shape, student_preprocessing)
              for name in names]
    if len(loaded) == 1:
        return loaded[0]
    members, described = zip(*loaded)
    return Ensemble(members), {"teacher": [d["teacher"] for d in described],
                               "members": list(described)}


def with_teacher_predictions(examples, teacher, spec, preprocessing: str, limit=None):
    """The raw examples with a "teacher" entry: the teacher's probabilities for the image,
    computed once here on the unaugmented image (`train.py --cache-teacher`). Only the first
    `limit` examples, which are all a limited run reads."""
    if limit:
        examples = examples.take(limit)
    images = datasets.pipeline(examples, spec, training=False, batch_size=500,
                               preprocessing_name=preprocessing, cache=False)
    predictions = teacher.predict(images.map(lambda image, label: image), verbose=0)
    cached = tf.data.Dataset.from_tensor_slices(predictions.astype("float32"))
    return tf.data.Dataset.zip((examples, cached)).map(
        lambda example, prediction: {**example, "teacher": prediction})


def load_member(name: str, weights_file: str | None, spec, input_shape,
                student_preprocessing: str):
    """A registered model with its shipped weights for the data set, or with `weights_file`
    (its float twin if `train.py --float-twin` wrote the file); returned with the record of
    what was loaded, for the run's metrics.json.

    Loaded from the file, never through a raw-image wrapper: the teacher sees the student's
    preprocessed batches, so both must declare the same preprocessing.
    """
    record = zoo.get_record(name)
    preprocessing = datasets.preprocessing_for(record, spec)
    if preprocessing != student_preprocessing:
        raise ValueError(
            f"--teacher {record.name} expects {preprocessing!r} inputs on {spec.name}, the "
            f"student {student_preprocessing!r}; choose a teacher trained on the same inputs.")
    command = None  # how to make the teacher's weights again
    if weights_file is None:
        if spec.name not in record.weights:
            raise ValueError(
                f"--teacher {record.name} has no shipped weights for {spec.name} (it has: "
                f"{', '.join(record.weights) or 'none'}); pass --teacher-weights FILE.")
        weights_file = zoo.weights_file(record, spec.name)
        command = record.weights[spec.name].source  # kept should newer weights replace them
    float_twin = weights_io.saved_for(weights_file) == weights_io.float_twin_name(record.name)
    build = zoo.build_float_twin if float_twin else zoo.build_model
    teacher = build(record.name, input_shape=input_shape, num_classes=spec.num_classes,
                    weights=str(weights_file))
    described = {"teacher": record.name, "weights_sha256": weights_io.sha256_of(weights_file)}
    if float_twin:
        described["float_twin"] = True
    teacher_run = Path(weights_file).parent / "metrics.json"
    if teacher_run.exists():
        command = json.loads(teacher_run.read_text()).get("command")
    if command:
        described["command"] = command
    return teacher, described
