// A local OpenLineage receiver for test/bench/shipping.sh: answers 200 to
// every POST once its body is read, as fast as Node's HTTP server does.
// Usage: node receiver.js PORT
'use strict';
const http = require('http');
let received = 0;
http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => { received++; res.end(); });
}).listen(Number(process.argv[2]), '127.0.0.1');
process.on('SIGTERM', () => { console.log(`${received} requests`); process.exit(0); });
