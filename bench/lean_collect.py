"""The baseline of bench/collect.py: a lean AsyncOpenAI collection script, run as its own process.

    python bench/lean_collect.py BASE_URL REQUESTS.jsonl DB.sqlite CONCURRENCY

REQUESTS.jsonl: one `[task_id, request]` a line. CONCURRENCY workers each take the next line, send
it with `client.chat.completions.create` and commit the answer to SQLite as its own row (request and
answer JSON), one commit per row; only the lines in flight are parsed. Prints the rows stored."""

import asyncio
import json
import sqlite3
import sys


async def main(url: str, requests_file: str, db_file: str, concurrency: int) -> None:
    import openai

    db = sqlite3.connect(db_file)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS rows (task_id TEXT PRIMARY KEY, request TEXT, answer TEXT, tokens INT)")
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=2, timeout=60)

    with open(requests_file) as lines:
        async def worker() -> None:
            for line in lines:
                task_id, request = json.loads(line)
                answer = await client.chat.completions.create(**request)
                db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
                           (task_id, json.dumps(request), answer.model_dump_json(), answer.usage.total_tokens))
                db.commit()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()
    print(db.execute("SELECT count(*) FROM rows").fetchone()[0])
    db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
