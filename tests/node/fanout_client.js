// fanout_client.js -- a subscriber written the way the EHR's integration guide teaches, kept
// exactly in that shape so hms-sync is tested against it: amqplib, a plain fanout exchange
// asserted by name, an exclusive server-named queue bound with '', JSON.parse of the body, the
// ack after the handler, and dedupe by the event's id.
//
//   node fanout_client.js AMQP_URL EXCHANGE
//
// Prints "ready" once it consumes, then one line "event <body>" per distinct event (the body
// as received, byte for byte) and "duplicate <id>" per repeat.  Exits 0 on SIGTERM, 1 on any
// error, with one line saying what failed.
'use strict';

const amqp = require('amqplib');

const [url, exchange] = process.argv.slice(2);
if (!url || !exchange) {
  console.error('usage: node fanout_client.js AMQP_URL EXCHANGE');
  process.exit(2);
}

const seen = new Set();

function handle(event, body) {
  if (seen.has(event.id)) {
    console.log(`duplicate ${event.id}`);
    return;
  }
  seen.add(event.id);
  console.log(`event ${body}`);
}

async function main() {
  const conn = await amqp.connect(url);
  conn.on('error', (err) => {
    console.error(`fanout_client: connection error: ${err.message}`);
    process.exit(1);
  });
  const ch = await conn.createChannel();
  await ch.assertExchange(exchange, 'fanout');
  const { queue } = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(queue, exchange, '');
  await ch.consume(queue, (msg) => {
    if (msg === null) {
      console.error('fanout_client: the broker cancelled the consumer');
      process.exit(1);
    }
    const body = msg.content.toString('utf8');
    handle(JSON.parse(body), body);
    ch.ack(msg);
  });
  console.error('ready');
  process.on('SIGTERM', async () => {
    await conn.close();
    process.exit(0);
  });
}

main().catch((err) => {
  console.error(`fanout_client: ${err.message}`);
  process.exit(1);
});
