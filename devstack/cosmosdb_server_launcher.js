#!/usr/bin/env node
// Starts @vercel/cosmosdb-server over TLS with the project's local certificate instead of the bundled one
// (which expired in 2021 and names no host). Usage: node cosmosdb_server_launcher.js HOST PORT CERT KEY
"use strict";
const fs = require("fs");
const path = require("path");

const [host, port, certPath, keyPath] = process.argv.slice(2);
if (!host || !port || !certPath || !keyPath) {
  console.error("usage: cosmosdb_server_launcher.js HOST PORT CERT KEY");
  process.exit(2);
}
const modulePath = require.resolve("@vercel/cosmosdb-server", { paths: [__dirname, process.cwd()] });
const { createHttpsServer } = require(modulePath);
const server = createHttpsServer({
  cert: fs.readFileSync(path.resolve(certPath)),
  key: fs.readFileSync(path.resolve(keyPath)),
});
server.on("error", (err) => {
  console.error(`cosmosdb-server failed: ${err.message}`);
  process.exit(1);
});
server.listen(Number(port), host, () => {
  console.log(`cosmosdb-server listening on https://${host}:${port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => process.exit(0)); // in-memory store: nothing to flush
}
