"""The service the bridge is compared with: a small FastAPI app around confluent-kafka,
written the way one would write it in an afternoon. It checks the signature, parses
the body, wraps it in an event like the bridge's, hands it to the producer and
answers OK (before Kafka confirms, as the bridge with ack = memory does).
Run by bench/run.sh: uvicorn with uvloop and httptools, one worker per core.
Environment: BROKERS, TOPIC, TOKEN."""
import hashlib
import hmac
import json
import os
import time
import uuid

from confluent_kafka import Producer
from fastapi import FastAPI, Request
from fastapi.responses import Response

TOKEN = os.environ["TOKEN"]
TOPIC = os.environ["TOPIC"]
OK = b'{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}'
producer = Producer(
    {
        "bootstrap.servers": os.environ["BROKERS"],
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
    }
)
app = FastAPI()


def fail(status, info):
    body = json.dumps({"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": info})
    return Response(body, status_code=status, media_type="application/json")


@app.post("/callback")
async def callback(request: Request):
    query = request.query_params
    expected = hashlib.sha256((TOKEN + query.get("RequestTime", "")).encode()).hexdigest()
    if not hmac.compare_digest(expected, query.get("Sign", "")):
        return fail(401, "bad signature")
    try:
        body = await request.json()
    except ValueError:
        return fail(400, "the body is not JSON")
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"tim://{query.get('SdkAppid')}",
        "type": "tim.c2c.message.sent",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "datacontenttype": "application/json",
        "data": {
            "msg_key": body.get("MsgKey"),
            "from": body.get("From_Account"),
            "to": body.get("To_Account"),
            "msg_seq": body.get("MsgSeq"),
            "msg_random": body.get("MsgRandom"),
            "msg_time": body.get("MsgTime"),
            "body": body.get("MsgBody"),
            "cloud_custom_data": body.get("CloudCustomData"),
        },
    }
    while True:
        try:
            producer.produce(TOPIC, key=body.get("MsgKey"), value=json.dumps(event, ensure_ascii=False))
            break
        except BufferError:
            producer.poll(0.01)
    producer.poll(0)
    return Response(OK, media_type="application/json")
