/* resume.c -- the resume decision of a (re)connecting session. */
#include "core/resume.h"

hms_resume_verdict_t hms_resume_decide(const hms_resume_facts_t *f, uint64_t *request,
                                       uint64_t *start)
{
    *request = 0;
    *start = 0;
    if (!f->slot_exists) {
        if (f->may_create && !f->remembered)
            return HMS_RESUME_CREATE;
        /* Recreating a slot someone dropped would silently skip changes,
         * unless a snapshot re-sends what the new slot cannot. */
        if (!f->resnapshot)
            return f->may_create ? HMS_RESUME_DROPPED : HMS_RESUME_VANISHED;
        if (!f->first && !f->same_source)
            return HMS_RESUME_OTHER_SOURCE;
        return HMS_RESUME_RECREATE;
    }
    if (f->first) {
        *start = f->slot_lsn;
        return HMS_RESUME_STREAM;
    }
    if (!f->same_source)
        return HMS_RESUME_OTHER_SOURCE;
    if (f->slot_lsn > f->ours) {
        if (!(f->remembered && f->progress_lsn > f->ours))
            return HMS_RESUME_SLOT_AHEAD;
        *request = f->ours;
        *start = f->slot_lsn;
        return HMS_RESUME_TAKEOVER;
    }
    /* At or behind us: PostgreSQL skips what commits before the request. */
    *request = f->ours;
    *start = f->ours;
    return HMS_RESUME_STREAM;
}

bool hms_resume_refused(hms_resume_verdict_t v)
{
    return v != HMS_RESUME_STREAM && v != HMS_RESUME_CREATE && v != HMS_RESUME_TAKEOVER &&
           v != HMS_RESUME_RECREATE;
}
