-- wrk script of the HTTP benchmark (bench/http/drive.py): plain GETs as wrk sends them without a script,
-- and at the end one JSON line with what the driver needs: requests, duration, errors, latency
-- percentiles (microseconds). It defines no response() callback: that would make wrk hand every response
-- to Lua and spend more of its CPU, which is the scarce side here.
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"p50_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean, latency.max))
end
