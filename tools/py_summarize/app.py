"""`py_summarize`: an extractive summary of a text or a file, as a
BoramClaw tool written in Python.

Built with componentize-py against the same WIT contract (`wit/tool.wit`)
as the Rust tools, it loads and runs unchanged in the host, under the same
policy: it can read `path` only inside a directory the policy grants it.
Only the standard library is used; the CPython interpreter is inside the
component.
"""

import json
import re
from collections import Counter

import wit_world
from componentize_py_types import Err
from wit_world.imports import types

NAME = "py_summarize"

DESCRIPTION = (
    "Summarise a text or a text file: picks the sentences that carry the "
    "most frequent content words, in their original order. Give `text`, or "
    "`path` to a file inside a granted directory (e.g. /workspace/report.txt)."
)

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "description": "The text to summarise."},
        "path": {
            "type": "string",
            "description": "A file to summarise instead, e.g. /workspace/notes.txt.",
        },
        "sentences": {
            "type": "integer",
            "minimum": 1,
            "maximum": 20,
            "description": "How many sentences to keep (default 3).",
        },
    },
}

STOPWORDS = set(
    """a an and are as at be but by for from has have he her his i in is it its
    of on or our she so that the their them there they this to was we were what
    when which who will with you your not no do does did than then also into
    about over after before can could would should may might more most""".split()
)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"[a-zA-Z][a-zA-Z'-]*")


def invalid(message):
    return Err(types.ToolError_InvalidInput(message))


def failed(message):
    return Err(types.ToolError_Failed(message))


def summarise(text, keep):
    sentences = [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]
    words = [w.lower() for w in WORD.findall(text)]
    content = Counter(w for w in words if w not in STOPWORDS)
    top = max(content.values(), default=1)

    def score(sentence):
        found = [w.lower() for w in WORD.findall(sentence)]
        if not found:
            return 0.0
        return sum(content.get(w, 0) / top for w in found) / (len(found) ** 0.5)

    ranked = sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))
    chosen = sorted(ranked[:keep])
    return {
        "summary": [sentences[i] for i in chosen],
        "sentence_count": len(sentences),
        "word_count": len(words),
    }


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return [
            types.ToolSpec(
                name=NAME, description=DESCRIPTION, input_schema=json.dumps(SCHEMA)
            )
        ]

    def call(self, name, input):
        if name != NAME:
            raise invalid(f"unknown tool `{name}`; this component provides `{NAME}`")
        try:
            args = json.loads(input)
        except ValueError as e:
            raise invalid(f"the input is not JSON: {e}")
        if not isinstance(args, dict):
            raise invalid("the input must be a JSON object")
        unknown = set(args) - set(SCHEMA["properties"])
        if unknown:
            raise invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
        keep = args.get("sentences", 3)
        if not isinstance(keep, int) or not 1 <= keep <= 20:
            raise invalid("`sentences` must be an integer from 1 to 20")
        text, path = args.get("text"), args.get("path")
        if (text is None) == (path is None):
            raise invalid("give exactly one of `text` and `path`")
        if path is not None:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise failed(f"cannot read {path}: {e.strerror or e}")
        if not isinstance(text, str) or not text.strip():
            raise invalid("the text is empty")
        return json.dumps(summarise(text, keep))
