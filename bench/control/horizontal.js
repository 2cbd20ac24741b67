/** bench:control part "horizontal": not written yet (issue 13). */
'use strict';
async function run() {
  throw new Error('the horizontal part is not written yet');
}
module.exports = { run };
