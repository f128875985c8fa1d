"""The service's OpenAPI document, made to say what the service does.

FastAPI documents what the Python types say. The rest is added here, from
the app's settings and its loaded bundle, so that a request the document
calls valid is answered and one it calls invalid is refused:

- the limits of `recsys.serving.settings.Settings` (`k` and `candidates` at most
  RECSYS_MAX_K, `exclude` at most RECSYS_MAX_EXCLUDE ids, a batch at most
  RECSYS_MAX_BATCH queries);
- the bundle's query features, each with the values it takes (`features`
  takes no other name), and `history` as a list of item ids;
- the rerank fields: without `--ranker`, `rerank` must be false and
  `candidates` and `blend` absent; with one, they need `"rerank": true`
  and a `user_id`;
- one error body (`Error`) for every 4xx and 5xx, and 401 on every route
  under RECSYS_AUTH_ALL.

The document is built on first request and again after a reload.
"""

from fastapi.openapi.utils import get_openapi

from recsys.features.specs import BucketizedFeature
from recsys.features.specs import MultiCategoricalFeature
from recsys.features.specs import NumericFeature
from recsys.features.specs import TextFeature
from recsys.names import HISTORY

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ID = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
SCALAR = {"type": ["string", "integer", "number", "null"]}


def _feature_schema(spec, booleans=False):
    if isinstance(spec, (NumericFeature, BucketizedFeature)):
        return {"type": ["number", "null"]}
    if isinstance(spec, (MultiCategoricalFeature, TextFeature)):
        return {"type": ["string", "null"]}
    if booleans:  # categories learnt from a column of booleans
        return {"type": [*SCALAR["type"], "boolean"]}
    return SCALAR


def _features_schema(service):
    pre = service.bundle.preprocessor
    properties = {
        name: _feature_schema(
            pre.feature(name), name in service.boolean_features
        )
        for name in service.query_features
    }
    if service.history_length:
        properties[HISTORY] = {
            "anyOf": [{"type": "array", "items": ID}, {"type": "null"}],
            "description": (
                "Item ids, in any order (the bundle reads a profile)."
                if service.bundle.config["model"].get("history") == "profile"
                else "Item ids, most recent first."
            ),
        }
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "description": "Query features by name.",
    }


def _set_maximum(schema, maximum):
    """Adds `maximum` to the integer branch of `schema`."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "integer":
            branch["maximum"] = maximum


def _retrieve_request(schema, settings, service, reranker):
    props = schema["properties"]
    _set_maximum(props["k"], settings.max_k)
    props["exclude"]["maxItems"] = settings.max_exclude
    if service is not None:
        features = _features_schema(service)
        props["features"] = {"anyOf": [features, {"type": "null"}]}
    if reranker is None:
        props["rerank"] = {"type": "boolean", "enum": [False]}
        props["candidates"] = {"type": "null"}
        props["blend"] = {"type": "null"}
        return
    _set_maximum(props["candidates"], settings.max_k)
    plain = {
        "properties": {
            "rerank": {"enum": [False]},
            "candidates": {"type": "null"},
            "blend": {"type": "null"},
        }
    }
    # Each branch repeats the limits it keeps: some generators (and
    # readers) take a branch's `properties` for the whole story.
    reranked = {
        "required": ["rerank", "user_id"],
        "properties": {
            "rerank": {"enum": [True]},
            "user_id": ID,
            "candidates": props["candidates"],
            "blend": props["blend"],
        },
    }
    schema["allOf"] = [{"anyOf": schema.pop("anyOf")}]
    schema["allOf"].append({"anyOf": [plain, reranked]})


def _use_one_error_shape(document, settings):
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if settings.auth_all or path.startswith("/admin/"):
                responses.setdefault(
                    "401",
                    {
                        "description": "Missing or wrong token",
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
                operation["security"] = [{"bearer": []}]
            for response in responses.values():
                content = response.get("content", {}).get("application/json")
                if content and content.get("schema", {}).get(
                    "$ref", ""
                ).endswith("/HTTPValidationError"):
                    content["schema"] = ERROR_REF
    schemas = document["components"]["schemas"]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    document["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"}
    }


def service_openapi(app):
    """The OpenAPI document of a `serving.create_app` app (cached)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    state = app.state
    settings = state.settings
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document["components"]["schemas"]
    _retrieve_request(
        schemas["RetrieveRequest"],
        settings,
        getattr(state, "service", None),
        state.reranker,
    )
    schemas["BatchRequest"]["properties"]["queries"]["maxItems"] = (
        settings.max_batch
    )
    similar = document["paths"]["/v1/items/{item_id}/similar"]["get"]
    for parameter in similar["parameters"]:
        if parameter["name"] == "k":
            _set_maximum(parameter["schema"], settings.max_k)
    _use_one_error_shape(document, settings)
    app.openapi_schema = document
    return document
