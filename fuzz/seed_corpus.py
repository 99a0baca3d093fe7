#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus: each seed document's body and each family body,
signed and unsigned, as `query\nbody` (the format of src/http/fuzzing.rs)."""
import hashlib, json, pathlib

ROOT = pathlib.Path(__file__).resolve().parent
OUT = ROOT / "corpus" / "request"
SIGNED, UNSIGNED, TOKEN, NOW = 1400000001, 1400000002, "fuzz-token-0123456789", 1700000000

bodies = [json.loads(p.read_text())
          for p in sorted((ROOT.parent / "tests" / "fixtures").glob("seed_*.json"))]
bodies += [
    {"CallbackCommand": "C2C.CallbackAfterModifyMsg", "From_Account": "a", "To_Account": "b",
     "MsgKey": "1_2_3", "Operator_Account": "a",
     "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "edited 🙂"}}]},
    {"CallbackCommand": "C2C.CallbackBeforeSendMsg", "From_Account": "a", "To_Account": "b",
     "MsgSeq": 1, "MsgRandom": 2, "MsgTime": 3, "MsgKey": "1_2_3",
     "MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "x", "Desc": "d", "Ext": "", "Sound": ""}}]},
    {"CallbackCommand": "Group.CallbackAfterSendMsg", "GroupId": "@TGS#2J4SZEAEL", "Type": "Public",
     "From_Account": "jared", "MsgSeq": 9001, "Random": 2946326331, "MsgTime": 1490686222,
     "MsgBody": [{"MsgType": "TIMImageElem", "MsgContent": {"UUID": "u", "ImageFormat": 1,
                  "ImageInfoArray": [{"Type": 1, "Size": 10, "Width": 2, "Height": 3, "URL": "https://x"}]}}]},
    {"CallbackCommand": "Group.CallbackAfterRecallMsg", "GroupId": "@TGS#2J4SZEAEL", "Type": "Public",
     "Operator_Account": "admin", "MsgSeqList": [{"MsgSeq": 9001}, {"MsgSeq": 9002}], "EventTime": 1670574414123},
    {"CallbackCommand": "C2C.CallbackAfterMsgReadReceipt", "EventTime": 1670574414123,
     "C2CMsgInfo": [{"From_Account": "a", "To_Account": "b", "MsgKey": "r1", "MsgId": "id-1"}]},
    {"CallbackCommand": "C2C.CallbackAfterMsgReport", "Report_Account": "jared", "Peer_Account": "Jonh",
     "LastReadTime": 1614754606, "UnreadMsgNum": 7},
    {"CallbackCommand": "C2C.CallbackAfterMsgReadAll", "Report_Account": "Jonh", "EventTime": 1769773302575,
     "GroupReadInfo": [{"GroupId": "g", "MsgSeq": 100}]},
    {"CallbackCommand": "C2C.CallbackAfterC2CMsgExtension", "From_Account": "user1", "To_Account": "user2",
     "MsgKey": "93847636_1287657_1764688415", "OperateType": 1,
     "ExtensionList": [{"Key": "k1", "Value": "v1", "Seq": 1}], "Seq": 1, "EventTime": 1764688540182},
    {"CallbackCommand": "State.StateChange", "Info": {"Action": "Login", "To_Account": "a", "Reason": "Register"}},
]

OUT.mkdir(parents=True, exist_ok=True)
for i, body in enumerate(bodies):
    command = body["CallbackCommand"]
    sign = hashlib.sha256(f"{TOKEN}{NOW}".encode()).hexdigest()
    for name, query in [
        ("unsigned", f"SdkAppid={UNSIGNED}&CallbackCommand={command}&contenttype=json&ClientIP=1.2.3.4&OptPlatform=iOS"),
        ("signed", f"SdkAppid={SIGNED}&CallbackCommand={command}&contenttype=json&Sign={sign}&RequestTime={NOW}"),
    ]:
        data = query.encode() + b"\n" + json.dumps(body, ensure_ascii=False).encode()
        (OUT / f"seed-{i:02}-{name}").write_bytes(data)
print(f"{2 * len(bodies)} seeds in {OUT}")
