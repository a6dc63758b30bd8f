// A webhook receiver for the integration tests (tests/tests/webhooks.rs). It verifies every
// delivery with the `standardwebhooks` package from npm (the specification's own library,
// independent of the suite's signing code) and records what it saw.
//
//   node webhook_receiver.mjs      prints `PORT=<n>` once listening on 127.0.0.1
//   POST /config/<name>   {"secrets": ["whsec_…"], "fail_first": 2, "status": 503}
//                         how /hook/<name> answers: the first `fail_first` attempts of each
//                         webhook-id get `status`, later ones 204; `"status": 410` with a large
//                         `fail_first` makes an endpoint that is gone.
//   POST /hook/<name>     a delivery: verified with each configured secret, recorded, answered
//   GET  /records/<name>  every delivery recorded for <name>, in order of arrival
import http from "node:http";
import { Webhook } from "standardwebhooks";

const configs = new Map();
const records = new Map();
const seen = new Map();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const server = http.createServer(async (req, res) => {
  const [, kind, name] = req.url.split("/");
  const body = await readBody(req);
  if (req.method === "POST" && kind === "config") {
    configs.set(name, JSON.parse(body));
    res.writeHead(204).end();
    return;
  }
  if (req.method === "GET" && kind === "records") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(records.get(name) ?? []));
    return;
  }
  if (req.method === "POST" && kind === "hook") {
    const config = configs.get(name) ?? { secrets: [], fail_first: 0, status: 503 };
    const headers = {
      "webhook-id": req.headers["webhook-id"],
      "webhook-timestamp": req.headers["webhook-timestamp"],
      "webhook-signature": req.headers["webhook-signature"],
    };
    const verified = config.secrets.map((secret) => {
      try {
        new Webhook(secret).verify(body, headers);
        return true;
      } catch {
        return false;
      }
    });
    const id = headers["webhook-id"];
    const n = (seen.get(`${name}/${id}`) ?? 0) + 1;
    seen.set(`${name}/${id}`, n);
    const status = n <= (config.fail_first ?? 0) ? (config.status ?? 503) : 204;
    let payload = null;
    try {
      payload = JSON.parse(body);
    } catch {}
    const list = records.get(name) ?? [];
    list.push({ webhook_id: id, attempt: n, verified, status, payload,
                signatures: (headers["webhook-signature"] ?? "").split(" ").length });
    records.set(name, list);
    res.writeHead(status).end();
    return;
  }
  res.writeHead(404).end();
});

server.listen(0, "127.0.0.1", () => {
  console.log(`PORT=${server.address().port}`);
});
