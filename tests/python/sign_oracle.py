"""Signature oracle for tests/sign_differential.rs: the official Alibaba Cloud signers.

Reads one JSON case per line on stdin and prints one JSON result per line:
  {"style": "v1", "method": "POST", "params": [[k, v], ...], "secret": "..."}
    -> {"string_to_sign": ..., "signature": ...}     (aliyunsdkcore rpc_signature_composer)
  {"style": "v3", "method": "POST", "query": [[k, v], ...], "headers": [[k, v], ...],
   "payload": "<hex sha256>", "ak": "...", "secret": "..."}
    -> {"authorization": ...}                         (alibabacloud_tea_openapi Utils.get_authorization)
"""
import json
import sys
import types

from aliyunsdkcore.auth.composer import rpc_signature_composer as rpc
from alibabacloud_tea_openapi.utils import Utils

compose_string_to_sign = getattr(rpc, "__compose_string_to_sign")
get_signature = getattr(rpc, "__get_signature")


def v1(case):
    params = dict(case["params"])
    sts = compose_string_to_sign(case["method"], params)
    return {"string_to_sign": sts, "signature": get_signature(sts, case["secret"])}


def v3(case):
    request = types.SimpleNamespace(
        method=case["method"],
        pathname="/",
        query=dict(case["query"]),
        headers=dict(case["headers"]),
    )
    auth = Utils.get_authorization(
        request, "ACS3-HMAC-SHA256", case["payload"], case["ak"], case["secret"]
    )
    return {"authorization": auth}


for line in sys.stdin:
    if not line.strip():
        continue
    case = json.loads(line)
    result = v1(case) if case["style"] == "v1" else v3(case)
    print(json.dumps(result), flush=True)
