// Validates OpenLineage events (one JSON object a line, in the file given)
// against the JSON Schemas in schemas/: the RunEvent itself, then every
// facet against the schema of its own name, whose $id its _schemaURL must
// name.
'use strict';
const fs = require('fs');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const dir = path.join(__dirname, 'schemas');
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const facetSchemas = {};      // facet key -> schema $id
let eventSchema = null;
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json'))) {
  const schema = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  ajv.addSchema(schema);
  if (file === 'OpenLineage.json') eventSchema = schema.$id;
  else for (const key of Object.keys(schema.properties || {})) facetSchemas[key] = schema.$id;
}

const errors = [];
function check(schemaId, value, where) {
  const validate = ajv.getSchema(schemaId);
  if (!validate(value)) errors.push(`${where}: ${ajv.errorsText(validate.errors)}`);
}
function checkFacets(facets, where) {
  for (const [key, facet] of Object.entries(facets || {})) {
    const id = facetSchemas[key];
    if (!id) { errors.push(`${where}.${key}: no schema for this facet`); continue; }
    if (!String(facet._schemaURL).startsWith(id + '#')) {
      errors.push(`${where}.${key}: _schemaURL ${facet._schemaURL} does not name ${id}`);
    }
    check(id, { [key]: facet }, `${where}.${key}`);
  }
}

const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.trim() !== '');
lines.forEach((line, i) => {
  const event = JSON.parse(line);
  const where = `event ${i + 1} (${event.eventType} of ${event.job && event.job.name})`;
  check(eventSchema, event, where);
  if (!('run' in event)) errors.push(`${where}: not a RunEvent`);
  checkFacets(event.run && event.run.facets, `${where} run`);
  checkFacets(event.job && event.job.facets, `${where} job`);
  for (const kind of ['inputs', 'outputs']) {
    (event[kind] || []).forEach((ds, j) => {
      checkFacets(ds.facets, `${where} ${kind}[${j}]`);
      checkFacets(ds.inputFacets, `${where} ${kind}[${j}] inputFacets`);
      checkFacets(ds.outputFacets, `${where} ${kind}[${j}] outputFacets`);
    });
  }
});
if (errors.length > 0 || lines.length === 0) {
  console.error(errors.length > 0 ? errors.join('\n') : 'no events');
  process.exit(1);
}
console.log(`${lines.length} valid events`);
