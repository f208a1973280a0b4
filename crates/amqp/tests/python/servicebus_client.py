"""Drives the listener with the official Python SDK (azure-servicebus 7.x).

Usage: servicebus_client.py CONNECTION_STRING QUEUE
Exits 0 after every step passed; any failure raises (non-zero exit) naming the step.
"""

import sys
import uuid

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main(connection_string, queue):
    run_id = uuid.uuid4().hex
    with ServiceBusClient.from_connection_string(connection_string) as client:
        with client.get_queue_sender(queue) as sender:
            sender.send_messages(
                ServiceBusMessage(
                    "first",
                    message_id=f"{run_id}-1",
                    subject="Greeting",
                    application_properties={"tenantId": "t1", "n": 7},
                )
            )
            batch = sender.create_message_batch()
            batch.add_message(ServiceBusMessage("second"))
            batch.add_message(ServiceBusMessage("third"))
            sender.send_messages(batch)
        print("sent", flush=True)

        with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
            received = []
            while len(received) < 3:
                got = receiver.receive_messages(max_message_count=3, max_wait_time=5)
                check(got, f"only {len(received)} of 3 messages arrived")
                received.extend(got)
            bodies = [str(m) for m in received]
            check(bodies == ["first", "second", "third"], f"bodies {bodies}")
            first = received[0]
            check(first.message_id == f"{run_id}-1", f"message id {first.message_id}")
            check(first.subject == "Greeting", f"subject {first.subject}")
            props = {k.decode() if isinstance(k, bytes) else k: v
                     for k, v in (first.application_properties or {}).items()}
            tenant = props.get("tenantId")
            tenant = tenant.decode() if isinstance(tenant, bytes) else tenant
            check(tenant == "t1", f"tenantId {props}")
            check(first.sequence_number is not None and first.sequence_number > 0,
                  f"sequence number {first.sequence_number}")
            check(first.lock_token is not None, "no lock token")
            print("received", flush=True)

            before = first.locked_until_utc
            after = receiver.renew_message_lock(first)
            check(after is not None and after >= before, f"renewed {before} -> {after}")
            print("renewed", flush=True)

            receiver.complete_message(first)
            receiver.complete_message(received[1])
            receiver.dead_letter_message(
                received[2], reason="MalformedEnvelope", error_description="eventId: required"
            )
            print("settled", flush=True)

            rest = receiver.receive_messages(max_message_count=1, max_wait_time=1)
            check(not rest, f"settled messages came back: {[str(m) for m in rest]}")

        with client.get_queue_receiver(
            queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=5
        ) as dlq:
            dead = dlq.receive_messages(max_message_count=1, max_wait_time=5)
            check(len(dead) == 1, "no dead-lettered message")
            check(str(dead[0]) == "third", f"dead-lettered body {dead[0]}")
            check(dead[0].dead_letter_reason == "MalformedEnvelope",
                  f"reason {dead[0].dead_letter_reason}")
            check(dead[0].dead_letter_error_description == "eventId: required",
                  f"description {dead[0].dead_letter_error_description}")
            dlq.complete_message(dead[0])
        print("dead-lettered", flush=True)
    print("OK", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
