// Test driver for the Node helper: reads {"calls": [{"fn", "args"}], "options": {...}?} on stdin,
// runs the calls in order (module shortcuts, or methods of `new Cronium(options)` when options are
// given) and prints {"loaded", "results": [{"ok", "value"} | {"ok": false, "name", "message", "statusCode"}]}.
'use strict';

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  input += chunk;
});
process.stdin.on('end', async () => {
  const spec = JSON.parse(input);
  const cronium = require('cronium'); // resolved through NODE_PATH, like in the job image
  const target = spec.options ? new cronium.Cronium(spec.options) : cronium;
  const results = [];
  for (const call of spec.calls) {
    try {
      const value = await target[call.fn](...call.args);
      const entry = { ok: true };
      if (value !== undefined) entry.value = value;
      results.push(entry);
    } catch (err) {
      results.push({
        ok: false,
        name: err && err.name,
        message: err && err.message,
        statusCode: err && err.statusCode,
        isCroniumError: err instanceof cronium.CroniumError,
      });
    }
  }
  process.stdout.write(JSON.stringify({ loaded: true, results }));
});
