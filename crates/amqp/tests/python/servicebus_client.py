"""Drives the listener with the official Python SDK (azure-servicebus 7.x): send, batch,
receive, renew, complete, dead-letter, peek, schedule + cancel, abandon, defer.

Usage: servicebus_client.py CONNECTION_STRING QUEUE
Exits 0 after every step passed; any failure raises (non-zero exit) naming the step.
"""

import datetime
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

        with client.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("retry-me"))
            later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            scheduled = sender.schedule_messages(ServiceBusMessage("scheduled"), later)
            check(len(scheduled) == 1, f"scheduled {scheduled}")
        with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
            peeked = receiver.peek_messages(max_message_count=10)
            check(sorted(str(m) for m in peeked) == ["retry-me", "scheduled"],
                  f"peeked {[str(m) for m in peeked]}")
            with client.get_queue_sender(queue) as sender:
                sender.cancel_scheduled_messages(scheduled[0])
            first = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            check(len(first) == 1 and str(first[0]) == "retry-me", "retry-me not received")
            receiver.abandon_message(first[0])
            again = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            check(len(again) == 1, "abandoned message not redelivered")
            check(again[0].delivery_count == 1, f"delivery count {again[0].delivery_count}")
            sequence = again[0].sequence_number
            receiver.defer_message(again[0])
            deferred = receiver.receive_deferred_messages([sequence])
            check(len(deferred) == 1 and str(deferred[0]) == "retry-me", "deferred not returned")
            receiver.complete_message(deferred[0])
            left = receiver.peek_messages(max_message_count=10)
            check(not left, f"left behind: {[str(m) for m in left]}")
        print("abandoned-deferred-scheduled", flush=True)
    print("OK", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
