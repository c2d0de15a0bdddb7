import type { ClusterView } from './ClusterNode.js';
import type { PullTree } from './placement.js';

function tree(node: PullTree, depth: number): string {
	const line = `    ${'  '.repeat(depth)}${depth > 0 ? '└ ' : ''}${node.node} (${node.viewers} viewers)\n`;
	return line + node.children.map((c) => tree(c, depth + 1)).join('');
}

/** `broadcast-relay status --cluster`: the cluster view as text. */
export function clusterReport(view: ClusterView): string {
	const out: string[] = [`cluster seen from node ${view.self}: Redis ${view.redis}\n\nnodes:\n`];
	for (const n of view.nodes) {
		const roles = n.broadcasts.map((b) => `${b.id}:${b.role}${b.upstream ? `<-${b.upstream}` : ''}`).join(' ') || '-';
		out.push(`  ${n.self ? '*' : ' '}${n.id} ${n.url} consumers ${n.load.consumers}/${n.load.budget} viewers ${n.load.viewers} cpu ${Math.round(n.load.cpu * 100)}% | ${roles}\n`);
	}
	out.push(`\nbroadcasts:${view.broadcasts.length ? '' : ' none'}\n`);
	for (const b of view.broadcasts) {
		out.push(`  ${b.id}: origin ${b.origin}, ${b.edges.length} edge(s)\n`);
		out.push(tree(b.tree, 0));
	}
	return out.join('');
}
