#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
/* udpecho PORT: answers each datagram with "udp-" and the datagram, from 0.0.0.0:PORT */
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1])); a.sin_addr.s_addr = INADDR_ANY;
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    printf("listening\n"); fflush(stdout);
    for (;;) {
        char buf[2048], out[2100]; struct sockaddr_in c; socklen_t cl = sizeof c;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&c, &cl);
        if (n < 0) return 1;
        memcpy(out, "udp-", 4); memcpy(out + 4, buf, n);
        sendto(s, out, n + 4, 0, (struct sockaddr *)&c, cl);
    }
}
