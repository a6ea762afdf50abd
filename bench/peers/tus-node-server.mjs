// The @tus/server peer of `make bench PEERS=1` (scripts/bench-peers installs it beside its
// node_modules): @tus/server with @tus/file-store on a directory, no auth, no hooks.
//
//   node tus-node-server.mjs --dir DIR --port PORT [--host 127.0.0.1]
//
// Uploads are created at POST /files and stored as DIR/<id> (FileStore; its metadata in
// DIR/<id>.json). Prints "listening on http://HOST:PORT/files" once it accepts connections.
import { parseArgs } from 'node:util';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const { values } = parseArgs({
	options: {
		dir: { type: 'string' },
		port: { type: 'string' },
		host: { type: 'string', default: '127.0.0.1' },
	},
});
if (!values.dir || !values.port) {
	console.error('usage: node tus-node-server.mjs --dir DIR --port PORT [--host HOST]');
	process.exit(2);
}

const server = new Server({
	path: '/files',
	datastore: new FileStore({ directory: values.dir }),
});
const listener = server.listen({ host: values.host, port: Number(values.port) }, () => {
	console.log(`listening on http://${values.host}:${values.port}/files`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
	process.on(signal, () => listener.close(() => process.exit(0)));
}
