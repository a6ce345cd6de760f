/* feedback.c -- the timing of standby status updates. */
#include "core/feedback.h"

void hms_feedback_start(hms_feedback_t *f, int interval_ms, int sender_timeout_ms, int64_t now_ms)
{
    f->interval_ms = interval_ms;
    f->sender_timeout_ms = sender_timeout_ms;
    f->last_sent_ms = 0;
    f->sent_flush = 0;
    f->last_recv_ms = now_ms;
    f->reply_requested = false;
}

int64_t hms_feedback_interval(const hms_feedback_t *f)
{
    int64_t interval = f->interval_ms;
    if (f->sender_timeout_ms > 0 && f->sender_timeout_ms / 3 < interval)
        interval = f->sender_timeout_ms / 3;
    return interval;
}

int64_t hms_feedback_next_ms(const hms_feedback_t *f, uint64_t flush)
{
    int64_t interval = hms_feedback_interval(f);
    if (f->reply_requested || flush > f->sent_flush)
        return f->last_sent_ms +
               (interval < HMS_FEEDBACK_COALESCE_MS ? interval : HMS_FEEDBACK_COALESCE_MS);
    return f->last_sent_ms + interval;
}

bool hms_feedback_due(const hms_feedback_t *f, uint64_t flush, int64_t now_ms)
{
    return f->reply_requested || now_ms >= hms_feedback_next_ms(f, flush);
}

bool hms_feedback_ask(const hms_feedback_t *f, int64_t now_ms)
{
    return now_ms - f->last_recv_ms >= f->interval_ms;
}

uint64_t hms_feedback_write_lsn(uint64_t received, uint64_t flush)
{
    return received > flush ? received : flush;
}

void hms_feedback_heard(hms_feedback_t *f, int64_t now_ms)
{
    f->last_recv_ms = now_ms;
}

void hms_feedback_reply_asked(hms_feedback_t *f)
{
    f->reply_requested = true;
}

void hms_feedback_sent(hms_feedback_t *f, uint64_t flush, int64_t now_ms)
{
    f->sent_flush = flush;
    f->last_sent_ms = now_ms;
    f->reply_requested = false;
}
