"""Writing a config dict as TOML: the canonical form that ``Scenario.to_toml`` returns and
``mcexplore show`` prints (tomllib only reads).

Where it sits: at the bottom of mcexplore.scenario beside .types; it depends on nothing of the
package, and the models use it.
"""

import json
import math


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not (isinstance(v, float) and math.isinf(v)) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _to_toml(d: dict) -> str:
    lines = []
    for k, v in d.items():
        if not isinstance(v, dict) and k != "strategies":
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    for s in d.get("strategies", []):
        lines += ["", "[[strategies]]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in s.items()]
    return "\n".join(lines) + "\n"
