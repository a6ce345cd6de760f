-- 006_value_constraints.sql -- keep values that no valid event can carry out of public.incidents.
--
-- hms-sync publishes a change that cannot become a valid event to the
-- rejected exchange instead (the stream goes on), but such a change never
-- reaches subscribers as an incident.  These checks refuse the values at the
-- source, where the writer can still fix them:
--
-- * occurred_at and updated_at must be finite and within years 1..9999 UTC:
--   'infinity', '-infinity', BC dates and years past 9999 have no RFC 3339
--   form, so the event's data (or its updatedat, which orders
--   last-write-wins) could not carry them.
-- * region becomes the last word of the routing key
--   (incident.<created|updated|deleted|snapshot>.<region>), an AMQP short
--   string of at most 255 bytes: the longest prefix, "incident.snapshot.",
--   leaves 237 bytes.
--
-- NOT VALID: the checks apply to every INSERT and UPDATE from now on, but
-- PostgreSQL does not scan the rows already there, so this applies (without
-- a long lock) to a table that already holds such a row.  Fix those rows,
-- then run ALTER TABLE public.incidents VALIDATE CONSTRAINT ... if you want
-- the checks to cover them too.  A constraint of the same name that already
-- exists is left alone.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT * FROM (VALUES
            ('incidents_occurred_at_finite',
             'CHECK (occurred_at >= ''0001-01-01 00:00:00+00'' AND occurred_at < ''10000-01-01 00:00:00+00'')'),
            ('incidents_updated_at_finite',
             'CHECK (updated_at >= ''0001-01-01 00:00:00+00'' AND updated_at < ''10000-01-01 00:00:00+00'')'),
            ('incidents_region_fits_routing_key', 'CHECK (octet_length(region) <= 237)')
        ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conrelid = 'public.incidents'::regclass AND conname = c.name) THEN
            EXECUTE format('ALTER TABLE public.incidents ADD CONSTRAINT %I %s NOT VALID',
                           c.name, c.def);
        END IF;
    END LOOP;
END
$$;
