"""Fine-tuning on this machine: the trainer runs as its own process (cascade_studio.trainer) in a job
folder inside the workspace, so it outlives the GUI; this backend starts it and reads its progress
file, which is all a restarted app needs to go on tracking it.

Needs the `local` extra (torch, transformers, peft). Without it the backend reports itself as
unavailable with the install command; nothing here imports torch.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_studio.core.finetune import (
    FINISHED_JOB_STATUSES,
    JobEvent,
    JobSpec,
    JobState,
    teacher_logprobs_path,
)

NAME = "local"
INSTALL = "pip install 'cascade-studio[local]'"
REQUIRED = ("torch", "transformers", "peft")
JOBS_DIR = "local-jobs"
_children: dict[str, subprocess.Popen] = {}  # started by this process: polled so they never linger as zombies
_progress_cache: dict[Path, tuple[int, list[dict[str, Any]]]] = {}  # progress file -> (bytes read, lines)


@dataclass(frozen=True)
class Availability:
    available: bool
    message: str


def availability() -> Availability:
    """Whether this machine can train locally, without importing torch (that takes seconds)."""
    python = trainer_python()
    if python is None:
        return Availability(False, "The packaged app cannot train locally: install Cascade Studio with pip "
                                   f"(`{INSTALL}`) or set CASCADE_STUDIO_TRAINER_PYTHON to a Python that has it.")
    if python == sys.executable:
        missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
        if missing:
            return Availability(False, f"Local training needs {', '.join(missing)}: `{INSTALL}`")
    elif not _other_python_ready(python):
        return Availability(False, f"CASCADE_STUDIO_TRAINER_PYTHON={python} cannot run the trainer: install "
                                   f"`{INSTALL}` into that Python.")
    return Availability(True, "Trains on this machine (CUDA GPU when torch sees one, else CPU).")


@functools.lru_cache(maxsize=4)
def _other_python_ready(python: str) -> bool:
    probe = ("import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in "
             f"{(*REQUIRED, 'cascade_studio')!r}))")
    try:
        return subprocess.run([python, "-c", probe], timeout=20, capture_output=True).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def trainer_python() -> str | None:
    override = os.environ.get("CASCADE_STUDIO_TRAINER_PYTHON")
    if override:
        return override
    return None if getattr(sys, "frozen", False) else sys.executable


def jobs_root(workspace_dir: Path) -> Path:
    return Path(workspace_dir) / JOBS_DIR


def model_name(base_model: str, suffix: str | None, job_id: str) -> str:
    stem = re.sub(r"[^a-z0-9._-]+", "-", Path(base_model.rstrip("/\\")).name.lower()).strip("-") or "model"
    tail = re.sub(r"[^a-z0-9._-]+", "-", (suffix or "distilled").lower()).strip("-") or "distilled"
    return f"{stem}-{tail}-{job_id.rsplit('-', 1)[-1][:6]}"


def teacher_logprobs_for(path: Path | None) -> Path | None:
    """The dataset builder writes the teacher's logprobs next to a training file as STEM.logprobs.jsonl."""
    if path is None:
        return None
    side = teacher_logprobs_path(Path(path))
    return side if side.exists() else None


def _alive(pid: int, job_id: str) -> bool:
    child = _children.get(job_id)
    if child is not None:
        return child.poll() is None
    if os.name == "nt":
        try:
            import psutil

            return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except Exception:  # noqa: BLE001 - psutil missing: assume alive, progress tells the rest
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            return b"cascade_studio.trainer" in cmdline  # not a recycled pid
        except (OSError, IndexError):
            return True
    return True


class LocalFineTuneBackend:
    name = NAME

    def __init__(self, workspace_dir: Path, options: dict[str, Any] | None = None) -> None:
        self.workspace_dir = Path(workspace_dir)
        self.options = options or {}

    def deprecation_notice(self, today: dt.date | None = None) -> str | None:
        return None

    def job_dir(self, job_id: str) -> Path:
        if not re.fullmatch(r"ftlocal-[0-9a-f]+", job_id):
            raise ValueError(f"{job_id} is not a local job id")
        return jobs_root(self.workspace_dir) / job_id

    async def upload(self, path: Path) -> str:
        """Nothing to upload: the trainer reads the file where it is."""
        path = Path(path).resolve()
        if not path.is_file():
            raise ValueError(f"{path} does not exist")
        return str(path)

    async def start(self, spec: JobSpec, training_file_id: str, validation_file_id: str | None) -> JobState:
        avail = availability()
        if not avail.available:
            raise ValueError(avail.message)
        base = self.model_folder(spec.base_model)
        if not (base / "config.json").is_file():
            raise ValueError(f"{base} is not a Hugging Face model folder (no config.json). Local jobs need a local "
                             "folder with config.json, the tokenizer files and the weights; nothing is downloaded.")
        opts = {**self.options, **spec.options}
        devices, nodes = int(opts.get("devices") or 1), int(opts.get("nodes") or 1)
        if devices < 1 or nodes < 1:
            raise ValueError("--devices and --nodes are at least 1")
        if opts.get("resume_from"):
            opts["resume_from"] = str(self.resumable_checkpoint(str(opts["resume_from"])))
        job_id = f"ftlocal-{secrets.token_hex(6)}"
        folder = self.job_dir(job_id)
        python = trainer_python() or sys.executable  # availability() checked it
        command = [python, "-m", "cascade_studio.trainer", str(folder)]
        if devices > 1 or nodes > 1:  # one process per device, started by torchrun
            command = torchrun_command(python, str(folder), devices, nodes, opts.get("rdzv_endpoint"), node_rank=0)
        folder.mkdir(parents=True)
        teacher = opts.pop("teacher_logprobs", None) or teacher_logprobs_for(Path(training_file_id))
        vteacher = teacher_logprobs_for(Path(validation_file_id)) if validation_file_id else None
        body = {
            "job_id": job_id, "created_at": int(time.time()), "workspace": str(self.workspace_dir.resolve()),
            "base_model": str(base.resolve()),
            "training_file": training_file_id, "validation_file": validation_file_id,
            "teacher_logprobs": None if teacher is None else str(teacher),
            "validation_teacher_logprobs": None if vteacher is None else str(vteacher),
            "n_epochs": spec.n_epochs, "batch_size": spec.batch_size,
            "learning_rate_multiplier": spec.learning_rate_multiplier, "seed": spec.seed,
            "fine_tuned_model": model_name(str(base), spec.suffix, job_id),
            "method": "lora", "alpha": 0.5, "temperature": 2.0, "mass": "drop", "soft_labels": "auto",
            "device": "auto", "lora_rank": 16, "max_length": 2048, "merge": True, **opts,
        }
        (folder / "spec.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
        if nodes > 1:
            others = [" ".join(torchrun_command("python", str(folder), devices, nodes, opts.get("rdzv_endpoint"),
                                                node_rank=k)) for k in range(1, nodes)]
            (folder / "NODES.md").write_text(
                f"# {job_id} on {nodes} machines\n\nThis machine is node 0. On each other machine, with Cascade Studio "
                f"and the local extra installed, the base model and the dataset at the same paths, and this job "
                f"folder's spec.json copied to {folder}, run:\n\n" + "\n".join(f"    {c}" for c in others) + "\n",
                encoding="utf-8")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
        else:
            kwargs["start_new_session"] = True  # not killed with the GUI's process group
        try:
            with open(folder / "trainer.log", "ab") as log:
                proc = subprocess.Popen(command, cwd=folder, env=env,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        except OSError as exc:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            raise ValueError(f"cannot start the trainer with {python}: {exc.strerror or exc}") from None
        _children[job_id] = proc
        (folder / "pid").write_text(str(proc.pid))
        return JobState(id=job_id, status="validating_files", base_model=str(base.resolve()),
                        training_file=training_file_id, hyperparameters=_public(body), created_at=body["created_at"])

    def model_folder(self, base_model: str) -> Path:
        """A base model folder, or a succeeded local job's id: its model (DPO after SFT starts there)."""
        if re.fullmatch(r"ftlocal-[0-9a-f]+", base_model):
            result = next((d for d in self._lines(base_model) if d.get("type") == "result"), None)
            output = (result or {}).get("output") or {}
            folder = output.get("merged")
            if not folder:
                raise ValueError(f"local job {base_model} has no merged model to start from (not succeeded, or "
                                 "trained with --no-merge): give its model folder")
            return Path(folder)
        return Path(base_model).expanduser()

    def resumable_checkpoint(self, source: str) -> Path:
        """A local job id (its latest resumable checkpoint) or a checkpoint folder."""
        if re.fullmatch(r"ftlocal-[0-9a-f]+", source):
            found = [d for d in self._lines(source) if d.get("type") == "checkpoint" and d.get("resumable")]
            if not found:
                raise ValueError(f"local job {source} wrote no resumable checkpoint (they are written every "
                                 "--checkpoint-every steps and, with LoRA, after each epoch)")
            return Path(found[-1]["path"])
        path = Path(source).expanduser().resolve()
        if not (path / "resume.pt").is_file():
            raise ValueError(f"{path} is not a resumable checkpoint folder (no resume.pt)")
        return path

    # -- reading the progress file --------------------------------------------------------------
    def _lines(self, job_id: str) -> list[dict[str, Any]]:
        """The progress file's complete lines. Read incrementally: a poll parses only what the
        trainer appended since the last one (a long job writes a line per step)."""
        path = self.job_dir(job_id) / "progress.jsonl"
        offset, lines = _progress_cache.get(path, (0, []))
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                raw = fh.read()
        except FileNotFoundError:
            return []
        end = raw.rfind(b"\n") + 1  # after it: nothing, or a line still being written
        if end:
            lines = list(lines)
            for line in raw[:end].split(b"\n")[:-1]:
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    lines.append({"type": "unreadable"})  # keeps line numbers (event ids) stable
            _progress_cache[path] = (offset + end, lines)
        return lines

    def _spec(self, job_id: str) -> dict[str, Any]:
        try:
            return json.loads((self.job_dir(job_id) / "spec.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"the folder of local job {job_id} is gone ({self.job_dir(job_id)})") from None

    def _pid(self, job_id: str) -> int | None:
        try:
            return int((self.job_dir(job_id) / "pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    async def status(self, job_id: str) -> JobState:
        spec = self._spec(job_id)
        lines = self._lines(job_id)
        folder = self.job_dir(job_id)
        state = JobState(id=job_id, status="validating_files", base_model=spec["base_model"],
                         training_file=spec["training_file"], hyperparameters=_public(spec),
                         created_at=spec.get("created_at") or int((folder / "spec.json").stat().st_mtime))
        for d in lines:
            kind = d.get("type")
            if kind == "state":
                state.status = d["status"]
                if d.get("hyperparameters"):
                    state.hyperparameters = {**state.hyperparameters, **d["hyperparameters"]}
                if d.get("error"):
                    state.error = {"code": d["error"].get("code"), "message": d["error"].get("message"), "param": None}
                if d["status"] in FINISHED_JOB_STATUSES:
                    state.finished_at = int(d["t"])
            elif kind == "metrics" and d.get("train_loss") is not None:
                state.trained_tokens = d.get("trained_tokens")
                if d.get("eta_s") is not None:
                    state.estimated_finish = int(d["t"] + d["eta_s"])
            elif kind == "result":
                state.fine_tuned_model = d.get("fine_tuned_model")
                state.trained_tokens = d.get("trained_tokens", state.trained_tokens)
                state.hyperparameters = {**state.hyperparameters, "output": d.get("output"), "serve": d.get("serve")}
        if state.status in FINISHED_JOB_STATUSES:
            state.estimated_finish = None
            return state
        pid = self._pid(job_id)
        if pid is not None and not _alive(pid, job_id):
            if len(self._lines(job_id)) > len(lines):  # it finished between the two reads
                return await self.status(job_id)
            state.status = "failed"
            state.estimated_finish = None
            state.error = {"code": "trainer_exited", "param": None,
                           "message": f"the trainer process ended without a result (killed, or the machine ran "
                                      f"out of memory?); its log: {folder / 'trainer.log'}" + _tail(folder / 'trainer.log')}
        return state

    async def events(self, job_id: str, known: set[str]) -> list[JobEvent]:
        out = []
        lines = self._lines(job_id)
        for n, d in enumerate(lines):
            eid = f"{job_id}:{n:08d}"  # sorts in file order within a second
            if eid in known:
                continue
            t = int(d.get("t", time.time()))
            kind = d.get("type")
            if kind == "event":
                out.append(JobEvent(eid, t, d.get("level", "info"), "message", d.get("message", ""), d.get("data")))
            elif kind == "metrics":
                data = {k: v for k, v in d.items() if k not in ("t", "type") and v is not None}
                if "valid_loss" in data:
                    msg = f"Step {d['step']}/{d['total_steps']}: validation loss={d['valid_loss']:.4f}"
                else:
                    eta = d.get("eta_s")
                    msg = (f"Step {d['step']}/{d['total_steps']}: training loss={d['train_loss']:.4f}"
                           + (f" (CE {d['ce_loss']:.4f}, KD {d['kd_loss']:.4f})" if d.get("kd_loss") is not None else "")
                           + (f" (DPO; reward accuracy {d['reward_accuracy']:.0%}, margin {d['reward_margin']:.3f})"
                              if d.get("reward_accuracy") is not None else "")
                           + (f", {d['tokens_per_s']:,.0f} tokens/s" if d.get("tokens_per_s") else "")
                           + (f", ETA {_duration(eta)}" if eta is not None else ""))
                out.append(JobEvent(eid, t, "info", "metrics", msg, data))
            elif kind == "state":
                msg = {"validating_files": "Trainer started; reading the dataset and the base model",
                       "running": "Training", "succeeded": "The job has successfully completed",
                       "cancelled": "The job was cancelled",
                       "failed": f"The job failed: {(d.get('error') or {}).get('message', '')}"}.get(d["status"], d["status"])
                out.append(JobEvent(eid, t, "error" if d["status"] == "failed" else "info", "message", msg))
            elif kind == "checkpoint":
                resume = f" (resume with --resume-from {job_id})" if d.get("resumable") else ""
                out.append(JobEvent(eid, t, "info", "message", f"Checkpoint at step {d['step']}: {d['path']}{resume}"))
            elif kind == "result":
                cmds = "; ".join(f"{r['server']}: {' && '.join(r['commands'])}" for r in (d.get("serve") or [])[:1])
                out.append(JobEvent(eid, t, "info", "message", f"New model: {d.get('fine_tuned_model')} in "
                                    f"{(d.get('output') or {}).get('dir')}. Serve it, e.g. {cmds}",
                                    {"output": d.get("output"), "serve": d.get("serve")}))
        if lines and lines[-1].get("type") == "state" and lines[-1].get("status") in FINISHED_JOB_STATUSES:
            _progress_cache.pop(self.job_dir(job_id) / "progress.jsonl", None)  # nothing more will be appended
        return out

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return [{"step_number": d["step"], "path": d["path"], "created_at": int(d["t"])}
                for d in self._lines(job_id) if d.get("type") == "checkpoint"]

    async def cancel(self, job_id: str) -> JobState:
        folder = self.job_dir(job_id)
        (folder / "cancel").touch()
        (folder / "pause").unlink(missing_ok=True)
        pid = self._pid(job_id)
        if pid is not None and _alive(pid, job_id):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
            for _ in range(50):  # it answers within a step; a slow step is tracked by the poller
                if not _alive(pid, job_id):
                    break
                time.sleep(0.1)
        state = await self.status(job_id)
        if state.status not in FINISHED_JOB_STATUSES and (pid is None or not _alive(pid, job_id)):
            state.status, state.error = "cancelled", None
        if state.status == "failed" and state.error and state.error.get("code") == "trainer_exited":
            state.status, state.error = "cancelled", None
        return state

    async def pause(self, job_id: str) -> JobState:
        (self.job_dir(job_id) / "pause").touch()
        return await self.status(job_id)

    async def resume(self, job_id: str) -> JobState:
        (self.job_dir(job_id) / "pause").unlink(missing_ok=True)
        return await self.status(job_id)

    async def close(self) -> None:
        return None


def _public(spec: dict[str, Any]) -> dict[str, Any]:
    keys = ("method", "n_epochs", "batch_size", "learning_rate_multiplier", "alpha", "temperature", "mass",
            "soft_labels", "device", "lora_rank", "max_steps", "learning_rate", "objective", "dpo_beta", "devices",
            "nodes", "checkpoint_every", "resume_from")
    return {k: spec[k] for k in keys if spec.get(k) is not None}


def torchrun_command(python: str, job_dir: str, devices: int, nodes: int = 1, rdzv_endpoint: str | None = None,
                     node_rank: int | None = None) -> list[str]:
    """The torchrun (torch.distributed.run) command that starts the trainer as `devices` processes on
    each of `nodes` machines meeting at `rdzv_endpoint` (HOST:PORT); one machine: --standalone."""
    cmd = [python, "-m", "torch.distributed.run", f"--nproc-per-node={devices}"]
    if nodes > 1:
        host, _, port = (rdzv_endpoint or "").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("several machines (--nodes) need --rdzv-endpoint HOST:PORT, this machine's address and "
                             "a free port that every machine reaches")
        # static rendezvous: node 0 (this machine) holds global rank 0, the one that writes the progress file
        cmd += [f"--nnodes={nodes}", f"--node-rank={node_rank or 0}", f"--master-addr={host}", f"--master-port={port}"]
    else:
        cmd.append("--standalone")
    return [*cmd, "-m", "cascade_studio.trainer", job_dir]


def _duration(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    last = [t for t in text if t.strip()][-lines:]
    return (" — " + " | ".join(last))[:600] if last else ""
