"""`AsyncBerth`: Berth's methods as coroutines, for asyncio code (notebooks, web services).

Each call runs the synchronous client on a worker thread (`asyncio.to_thread`), so the event
loop never waits on the network; the calls, their arguments, results, errors and retries are
Berth's. Cancelling `wait()`'s task cancels the job on the server, as Ctrl-C does for Berth.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ._client import Berth
from ._types import RerankResult


class AsyncBerth:
    """The same constructor and methods as Berth, awaited."""

    def __init__(self, url: str | Sequence[str] | None = None, **options: Any) -> None:
        self.sync = Berth(url, **options)

    async def info(self, model: str | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.info, model)

    async def classify(self, texts: Any, model: str | None = None, **options: Any) -> Any:
        return await asyncio.to_thread(self.sync.classify, texts, model, **options)

    async def tokenize(self, texts: Any, model: str | None = None, **options: Any) -> Any:
        return await asyncio.to_thread(self.sync.tokenize, texts, model, **options)

    async def embed(self, texts: Any, model: str | None = None, **options: Any) -> Any:
        return await asyncio.to_thread(self.sync.embed, texts, model, **options)

    async def rerank(self, query: str, texts: Sequence[str], model: str | None = None,
                     **options: Any) -> list[RerankResult]:
        return await asyncio.to_thread(self.sync.rerank, query, texts, model, **options)

    async def models(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.models)

    async def get_model(self, model: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.get_model, model)

    async def loaded_models(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.loaded_models)

    async def set_alias(self, name: str, alias: str, version: int | str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.set_alias, name, alias, version)

    async def delete_model(self, name: str, version: int | str | None = None) -> None:
        await asyncio.to_thread(self.sync.delete_model, name, version)

    async def import_model(self, name: str, directory: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.import_model, name, directory)

    async def export_model(self, model: str, directory: str) -> list[str]:
        return await asyncio.to_thread(self.sync.export_model, model, directory)

    async def upload_dataset(self, data: Any, **options: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.upload_dataset, data, **options)

    async def create_job(self, base_model: str, train_dataset_id: str, model_name: str,
                         **options: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.create_job, base_model, train_dataset_id, model_name, **options)

    async def get_job(self, job_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.get_job, job_id)

    async def list_jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.list_jobs, state)

    async def cancel_job(self, job_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.cancel_job, job_id)

    async def job_log(self, job_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.job_log, job_id, after_id)

    async def training_defaults(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.training_defaults)

    async def events(self, job_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The job's events as an async iterator, until it ends."""
        stream = self.sync.events(job_id)
        while True:
            item = await asyncio.to_thread(next, stream, None)
            if item is None:
                return
            yield item

    async def wait(self, job_id: str, *, progress: bool = False) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(self.sync.wait, job_id, progress=progress)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self.sync.cancel_job, job_id))
            raise
