import os

COLD = True


def handler(event, context):
    global COLD
    started_cold, COLD = COLD, False
    print(f"hello from {context.function_name} ({os.environ['AWS_EXECUTION_ENV']})")
    return {"message": f"Hello, {event.get('name', 'world')}!", "cold": started_cold,
            "request_id": context.aws_request_id}
