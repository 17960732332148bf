"""Template rendering (jinja2) with filters that make model-supplied names safe.

Names of tensors and models come from the user's model: they are *data*. Templates must only
place them through these filters:

``pystr``  -> a Python string literal (``repr`` of ``str``), valid for any content
``pyjson`` -> a Python expression ``json.loads('<escaped JSON>')`` building a value
``mdtext`` -> Markdown-safe inline text (backticks, pipes, newlines escaped)
``shquote``-> a single shell word
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import jinja2


def pystr(value: Any) -> str:
    return repr(str(value))


def pyjson(value: Any) -> str:
    return "json.loads(" + repr(json.dumps(value, sort_keys=True, ensure_ascii=True)) + ")"


def mdtext(value: Any) -> str:
    text = str(value).replace("\\", "\\\\")
    for ch in "`|*_[]<>#":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def shquote(value: Any) -> str:
    return shlex.quote(str(value))


def environment(*packages: str) -> jinja2.Environment:
    """A jinja2 environment loading templates from each package's ``templates/`` then the core's."""
    loaders = [jinja2.PackageLoader(p, "templates") for p in packages if p]
    loaders.append(jinja2.PackageLoader("deploykit.bundle", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pystr=pystr, pyjson=pyjson, mdtext=mdtext, shquote=shquote)
    return env


def render(template: str, context: dict[str, Any], *packages: str) -> str:
    return environment(*packages).get_template(template).render(**context)
