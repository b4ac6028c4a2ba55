"""The baseline of bench/collect.py: a lean AsyncOpenAI collection script, run as its own process.

    python bench/lean_collect.py BASE_URL REQUESTS.json DB.sqlite CONCURRENCY

Sends each request with `client.chat.completions.create` (at most CONCURRENCY at once) and commits
each answer to SQLite as its own row, one commit per row. Prints the rows stored."""

import asyncio
import json
import sqlite3
import sys


async def main(url: str, requests_file: str, db_file: str, concurrency: int) -> None:
    import openai

    with open(requests_file) as f:
        requests = json.load(f)
    db = sqlite3.connect(db_file)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS rows (task_id TEXT PRIMARY KEY, request TEXT, answer TEXT, tokens INT)")
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=2, timeout=60)
    sem = asyncio.Semaphore(concurrency)

    async def one(task_id: str, request: dict) -> None:
        async with sem:
            answer = await client.chat.completions.create(**request)
        db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
                   (task_id, json.dumps(request), answer.model_dump_json(), answer.usage.total_tokens))
        db.commit()

    await asyncio.gather(*(one(task_id, request) for task_id, request in requests))
    await client.close()
    print(db.execute("SELECT count(*) FROM rows").fetchone()[0])
    db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
