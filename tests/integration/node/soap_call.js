// One SOAP call with the npm "soap" package (a second SOAP stack, generated from the served WSDL).
// argv: wsdlUrl endpoint user password operation argsJson; prints {"result": ..., "xml": "<raw response>"}.
'use strict';
const soap = require('soap');

async function main() {
  const [wsdlUrl, endpoint, user, password, operation, argsJson] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdlUrl);
  client.setSecurity(new soap.BasicAuthSecurity(user, password));
  client.setEndpoint(endpoint);
  const [result, xml] = await client[operation + 'Async'](JSON.parse(argsJson));
  process.stdout.write(JSON.stringify({ result, xml }));
}

main().catch((err) => {
  process.stderr.write(String(err && err.message ? err.message : err));
  process.exit(1);
});
