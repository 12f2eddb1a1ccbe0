// A second SOAP stack (node "soap" from npm) against the FLR face: the client is built from the WSDL the
// server serves, authenticates with HTTP Basic and calls GetPatientGPDetails on the port asked for.
// Usage: node flr_client.js <wsdl url> <user> <password> <port: basic|ws> <patientNin>
// Prints {"result": ...} or {"fault": {"code", "message"}} as JSON on stdout.
"use strict";
const soap = require("soap");

async function main() {
  const [wsdl, user, password, port, nin] = process.argv.slice(2);
  const ws = port === "ws";
  const client = await soap.createClientAsync(wsdl, ws ? { forceSoap12Headers: true } : {});
  client.setSecurity(new soap.BasicAuthSecurity(user, password));
  const service = client.FlrReadOperationsService;
  const method = ws ? service.WSHttpBinding_IFlrReadOperations.GetPatientGPDetails
                    : service.BasicHttpBinding_IFlrReadOperations.GetPatientGPDetails;
  if (ws) {
    client.addSoapHeader({ "wsa:Action": "http://schemas.nhn.no/reg/flr/IFlrReadOperations/GetPatientGPDetails" },
                         "", "wsa", "http://www.w3.org/2005/08/addressing");
  }
  try {
    const [result] = await new Promise((resolve, reject) =>
      method({ patientNin: nin }, (err, res, raw) => (err ? reject(err) : resolve([res, raw]))));
    process.stdout.write(JSON.stringify({ result }));
  } catch (err) {
    const body = err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
    const detail = body && (body.detail || body.Detail);
    const generic = detail && detail.GenericFault;
    process.stdout.write(JSON.stringify({ fault: generic ? { code: generic.ErrorCode, message: generic.Message }
                                                         : { code: "?", message: String(err.message) } }));
  }
}

main().catch((err) => { process.stderr.write(String(err && err.stack || err)); process.exit(2); });
