// A Node.js job.
const cronium = require('cronium');

(async () => {
  const input = await cronium.input();
  console.log('hello from node, input:', JSON.stringify(input));
  await cronium.setVariable('node_greeting', 'hi from node');
  await cronium.output({ runtime: 'node', version: process.version });
})().catch((err) => { console.error(err.message); process.exit(1); });
