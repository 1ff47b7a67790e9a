"""What makes a search directory safe to resume, for both searches: its files are
readable, and it is resumed under the settings it was started with (otherwise its trials
would mix two searches)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from training.report import write_json


class CorruptSearchError(RuntimeError):
    """The search directory exists but cannot be read as a search, or not as this one."""


class KillSafeOracle:
    """Mixin for a keras-tuner Oracle, so that a search killed at any point resumes whole.

    - oracle.json and each trial.json are written through a temporary file and a rename:
      keras-tuner rewrites them in place, so a kill during a write left an empty
      trial.json, and a search that could not resume (seen in CI).
    - keras-tuner writes a new trial's trial.json before the oracle.json that lists it as
      ongoing: a kill between the two left a running trial that no tuner would retry but
      that counted against --trials (seen in CI: 5 of 6 trials). `reload` retries it.
    - keras-tuner's end_trial writes oracle.json before it takes the finished trial off
      the ongoing list: a kill before the next write left a finished trial that a resume
      ran again. `reload` retries only trials that did not finish.
    """

    def save(self):
        write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        write_json(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", trial.get_state())

    def reload(self):
        from keras_tuner.engine.trial import TrialStatus

        super().reload()  # queues the trials oracle.json lists as ongoing for a retry
        finished = {t.trial_id for t in self.trials.values()
                    if t.status in (TrialStatus.COMPLETED, TrialStatus.FAILED)}
        self._retry_queue = [t for t in self._retry_queue if t not in finished]
        self._retry_queue += [trial.trial_id for trial in self.trials.values()
                              if trial.status == TrialStatus.RUNNING
                              and trial.trial_id not in self._retry_queue]
        # killed between its trial.json and oracle.json, a finished trial is not in
        # end_order either, which keras-tuner's count of consecutive failures reads
        self.end_order += sorted(finished - set(self.end_order))


def check_readable(output_dir: Path, project_name: str) -> None:
    """keras-tuner's own files of a project: a truncated one names itself, not a traceback."""
    project = output_dir / project_name
    for path in [project / "oracle.json", *project.glob("trial_*/trial.json")]:
        if path.exists():
            try:
                json.loads(path.read_text())
            except ValueError as error:
                raise CorruptSearchError(
                    f"{path} is not valid JSON ({error}): the search directory {output_dir} "
                    "is corrupt. Delete that file (its trial is then re-run) or start a "
                    "new --output-dir."
                ) from None


def record_or_compare(path: Path, described: dict) -> dict | None:
    """Write `described` to `path` on a search's first run; on a resume, return what the
    first run wrote if it differs (None if the same)."""
    described = json.loads(json.dumps(described))  # tuples compare as the lists JSON holds
    if not path.exists():  # chief and workers may start together: write atomically
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(described))
        os.replace(partial, path)
        return None
    saved = json.loads(path.read_text())
    return saved if saved != described else None


def check_same_settings(project: Path, settings: dict, elsewhere: str) -> None:
    """Refuse to resume a search under other settings; `elsewhere` says how to start
    another search instead (e.g. "give this search another --name")."""
    saved = record_or_compare(project / "settings.json", settings)
    if saved:
        changed = {k: (saved.get(k), settings.get(k)) for k in {*saved, *settings}
                   if saved.get(k) != settings.get(k)}
        raise CorruptSearchError(
            f"{project} is a search with other settings (was, now: {changed}). Rerun it with "
            f"the same options, or {elsewhere}."
        )
