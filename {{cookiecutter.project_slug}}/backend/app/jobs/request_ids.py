"""The ids of the request that sent a job go with it as labels, and every log line the job
writes, in every attempt, carries them."""

from taskiq import TaskiqMessage, TaskiqMiddleware

from app.request_context import RequestIds, current_request_ids

REQUEST_ID_LABEL = "request_id"
CORRELATION_ID_LABEL = "correlation_id"


class RequestIdLabels(TaskiqMiddleware):
    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        ids = current_request_ids.get()
        if ids is not None:
            message.labels[REQUEST_ID_LABEL] = ids.request_id
            message.labels[CORRELATION_ID_LABEL] = ids.correlation_id
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        # Each job runs in a task of its own, so the ids end with it.
        request_id = message.labels.get(REQUEST_ID_LABEL)
        correlation_id = message.labels.get(CORRELATION_ID_LABEL)
        if request_id and correlation_id:
            current_request_ids.set(RequestIds(str(request_id), str(correlation_id)))
        return message
