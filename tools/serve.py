"""Serve a registered model over REST, refusing bad rows with one line that names the field.

python -m tools.serve --model tabular_gbm-isic2024-smoke [--alias champion] [--port 5001]

POST /invocations, a JSON body in one of MLflow's request shapes:
    {"inputs": [{field: value, ...}, ...]}            rows as records
    {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
    {"dataframe_records": [{field: value, ...}, ...]}
  200 {"predictions": [...]}
  400 {"error_code": "INVALID_PARAMETER_VALUE", "message": "row 0: missing field 'patient_id'"}
  500 {"error_code": "INTERNAL_ERROR", "message": ...}   (the traceback goes to the server log)
GET /ping: 200 once the model is loaded. GET /schema: the model's fields, types, required.

Why not only `mlflow models serve` (which serves these models too; a slow test proves it): its
400s repeat the whole request and pydantic's report per row (15-44 KB) and some carry a stack
trace, an empty list gets a generic message, and a typed model refuses `dataframe_split`. Here
every request goes through `shared.rows.check_records` with the pyfunc's own row type first,
then the same `predict` as in process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the endpoint's annotation

from shared.errors import InputError
from shared.logging import get_logger
from shared.rows import Row, RowError, check_records, row_type

log = get_logger(__name__)

SHAPES = ("inputs", "dataframe_split", "dataframe_records")


def records_of(body: Any) -> list[Any]:
    """The rows of a request body in any of the `SHAPES`, as a list of records."""
    keys = sorted(body) if isinstance(body, dict) else []
    shape = [k for k in keys if k in SHAPES]
    if len(shape) != 1 or set(keys) - {shape[0], "params"}:
        raise RowError(
            f"the body must be a JSON object with one of {', '.join(SHAPES)}; got "
            + (f"keys {keys}" if isinstance(body, dict) else type(body).__name__)
        )
    value = body[shape[0]]
    if shape[0] != "dataframe_split":
        return value
    if not isinstance(value, dict) or not {"columns", "data"} <= set(value):
        raise RowError('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    columns, data = value["columns"], value["data"]
    if not isinstance(data, list) or any(
        not isinstance(r, list) or len(r) != len(columns) for r in data
    ):
        raise RowError(f"dataframe_split: every data row must list {len(columns)} values")
    return [dict(zip(columns, r, strict=True)) for r in data]


def schema(row: type[Row]) -> dict[str, Any]:
    """The fields a request may send: type, whether required; and the ignored columns."""
    fields = {
        name: {
            "type": getattr(f.annotation, "__name__", str(f.annotation)),
            "required": f.is_required(),
        }
        for name, f in row.model_fields.items()
    }
    return {"row": row.__name__, "fields": fields, "ignored": list(row.IGNORED)}


def create_app(model_uri: str) -> Any:
    """A FastAPI app serving the pyfunc at `model_uri` (loaded once, here)."""
    import mlflow.pyfunc
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from mlflow.exceptions import MlflowException
    from starlette.concurrency import run_in_threadpool

    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:  # no such model or alias: say which, in one line
        raise InputError(f"cannot load {model_uri}: {str(exc).splitlines()[0]}") from None
    row = row_type(model.unwrap_python_model())
    app = FastAPI(title=f"{model_uri}", docs_url=None, redoc_url=None)

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error_code": code, "message": message}, status_code=status)

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok", "model": model_uri}

    @app.get("/schema")
    def get_schema() -> dict[str, Any]:
        return {"model": model_uri, **schema(row)}

    @app.post("/invocations")
    async def invocations(request: Request) -> Any:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return error(400, "INVALID_PARAMETER_VALUE", f"the body is not JSON: {exc}")
        try:
            rows = check_records(records_of(body), row)
            predictions = await run_in_threadpool(model.predict, rows)
        except InputError as exc:  # ours: rows, then the pipeline's own checks
            return error(400, "INVALID_PARAMETER_VALUE", str(exc).splitlines()[0])
        except Exception:
            log.exception("%s failed on a request", model_uri)
            return error(500, "INTERNAL_ERROR", "the model failed on this request (server log)")
        return {"predictions": json.loads(json.dumps(predictions, default=_plain))}

    return app


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv: Sequence[str] | None = None) -> None:
    from shared.cli import expected_errors

    p = argparse.ArgumentParser(prog="python -m tools.serve", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="registered model name (or a models:/ URI)")
    p.add_argument("--alias", default="champion")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5001)
    args = p.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = args.model if "://" in args.model or ":/" in args.model else None
    uri = uri or f"models:/{args.model}@{args.alias}"
    with expected_errors():
        app = create_app(uri)
    import uvicorn

    print(f"serving {uri} on http://{args.host}:{args.port}/invocations", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
