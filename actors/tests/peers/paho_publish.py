"""Publishes numbered readings with paho-mqtt at QoS 1, pipelined, and reports when each
PUBACK arrived.

Usage: paho_publish.py HOST PORT USER PASSWORD TOPIC COUNT WAIT_SECONDS

Message i carries {"ts": 1700000000000 + i, "value": i}. Prints one JSON object:
{"connected": rc, "sent": [unix seconds per message], "acked": [unix seconds or null]}.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def main():
    host, port, user, password, topic = sys.argv[1:6]
    count, wait = int(sys.argv[6]), float(sys.argv[7])
    sent = [None] * count
    mids = [None] * count
    acked_by_mid = {}
    connected = threading.Event()
    outcome = {"rc": None}

    def on_connect(client, userdata, flags, reason_code, properties):
        outcome["rc"] = reason_code.value
        connected.set()

    def on_publish(client, userdata, mid, reason_code, properties):
        acked_by_mid[mid] = time.time()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{user}")
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    client.on_publish = on_publish
    # Every message in flight at once: the broker must pipeline.
    client.max_inflight_messages_set(count)
    client.max_queued_messages_set(0)
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    connected.wait(10)
    if outcome["rc"] == 0:
        for i in range(count):
            payload = json.dumps({"ts": 1700000000000 + i, "value": i})
            sent[i] = time.time()
            mids[i] = client.publish(topic, payload, qos=1).mid
        deadline = time.time() + wait
        while time.time() < deadline and len(acked_by_mid) < count:
            time.sleep(0.01)
    client.loop_stop()
    client.disconnect()
    acked = [acked_by_mid.get(mid) for mid in mids]
    print(json.dumps({"connected": outcome["rc"], "sent": sent, "acked": acked}))


if __name__ == "__main__":
    main()
