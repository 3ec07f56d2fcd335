"""Request bodies of the routing server as pydantic models of the OpenAI schema (the fields the router
reads; any other field passes through to the backend unchanged), and their errors in one line.
"""

from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr
    text: Optional[StrictStr] = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: StrictStr
    content: Union[StrictStr, list[ContentPart], None] = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: Optional[StrictStr] = None
    messages: list[Message] = Field(min_length=1)
    stream: Optional[StrictBool] = False


class RouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Optional[StrictStr] = None
    queries: Optional[list[StrictStr]] = None
    query: Optional[StrictStr] = None


# the first field of an error's location -> the message that names the fix
HELP = {
    "messages": "'messages' must be a non-empty list of {\"role\": ..., \"content\": ...} objects",
    "content": "a message's content must be a string or a list of content parts ({\"type\": \"text\", \"text\": ...})",
    "stream": "'stream' must be true or false",
    "model": "'model' must be a string: router, router-<cost weight>, or a served model's name",
    "queries": "'queries' must be a non-empty list of non-empty strings",
    "query": "'query' must be a string",
}


def one_line(err: ValidationError) -> str:
    """The first problem of a validation error, as one line that names the fix."""
    first = err.errors()[0]
    location = [str(part) for part in first["loc"]]
    if "content" in location:
        return HELP["content"]
    if location and location[0] in HELP:
        return HELP[location[0]]
    if first["type"] == "extra_forbidden":
        return f"unknown field '{location[-1]}'; send 'queries' (a list of strings) and optionally 'model'"
    return f"'{'.'.join(location) or 'body'}': {first['msg']}".replace("\n", " ")
