-- wrk script for the POST scenario of tests/bench/run.sh: every request inserts
-- one row. A static request (no request() function) keeps wrk's own cost per
-- request as low as for the plain GET, so wrk stays out of the way.
wrk.method = "POST"
wrk.body = '{"k":42,"v":"tidepool bench row"}'
wrk.headers["Content-Type"] = "application/json"
