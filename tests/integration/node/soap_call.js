// One SOAP call with the npm "soap" package (a second SOAP stack, generated from the served WSDL).
// argv: wsdlUrl endpoint user password operation argsJson [soapVersion: 1.1 (default) or 1.2];
// prints {"result": ..., "xml": "<raw response>"}, or {"fault": {"code", "message"}} for a GenericFault.
'use strict';
const soap = require('soap');

async function main() {
  const [wsdlUrl, endpoint, user, password, operation, argsJson, version] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdlUrl, { forceSoap12Headers: version === '1.2' });
  client.setSecurity(new soap.BasicAuthSecurity(user, password));
  client.setEndpoint(endpoint);
  try {
    const [result, xml] = await client[operation + 'Async'](JSON.parse(argsJson));
    process.stdout.write(JSON.stringify({ result, xml }));
  } catch (err) {
    const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
    const detail = fault && (fault.detail || fault.Detail);
    if (!detail || !detail.GenericFault) throw err;
    process.stdout.write(JSON.stringify({ fault: { code: detail.GenericFault.ErrorCode,
                                                   message: detail.GenericFault.Message } }));
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.message ? err.message : err));
  process.exit(1);
});
