-- wrk script: POST /v1/orders, a NewOrderSingle body with a unique ClOrdID per request.
-- usage: wrk -t1 -c32 -d5s -s bench/gateway_orders.lua http://127.0.0.1:PORT -- RUN_TAG API_KEY
-- RUN_TAG keeps ClOrdIDs unique across runs against the same gateway (a reused
-- ClOrdID with the same body would be answered from the store, not sent).
-- At the end one JSON line: {"wrk": true, "requests": N, "accepted": N202, "seconds": S, ...}

local threads = {}
local next_id = 0

function setup(thread)
    next_id = next_id + 1
    thread:set("tid", next_id)
    table.insert(threads, thread)
end

local run_tag = "r"
local counter = 0
accepted = 0
other = 0

function init(args)
    run_tag = args[1] or tostring(os.time())
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    if args[2] then
        wrk.headers["X-API-Key"] = args[2]
    end
end

function request()
    counter = counter + 1
    local body = string.format(
        '{"ClOrdID":"%s-%d-%d","DeliverToCompID":"BRKA","Symbol":"005930","Side":"1",' ..
        '"OrdType":"2","OrderQty":"10","Price":"70000"}', run_tag, tid, counter)
    return wrk.format(nil, "/v1/orders", nil, body)
end

function response(status, headers, body)
    if status == 202 then
        accepted = accepted + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local ok, bad = 0, 0
    for _, t in ipairs(threads) do
        ok = ok + t:get("accepted")
        bad = bad + t:get("other")
    end
    io.write(string.format(
        '{"wrk": true, "requests": %d, "accepted": %d, "other_status": %d, "seconds": %.6f, ' ..
        '"socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
        summary.requests, ok, bad, summary.duration / 1e6,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        latency:percentile(50), latency:percentile(99)))
end
