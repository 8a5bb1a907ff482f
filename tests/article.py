"""The article's three training loops, written straight from the text (docs/article.md).

These are the references bpcli is compared against: global seeding, module-level code
turned into functions, nothing else changed.
"""

import torch
from torch import nn, optim


def experiment1(lr=0.01, epochs=100, w0=1.0):
    x_data = [1.0, 2.0, 3.0]
    y_data = [2.0, 4.0, 6.0]
    w = torch.tensor([w0])
    w.requires_grad = True
    grads, epoch_losses = [], []
    for epoch in range(epochs):
        for x, y in zip(x_data, y_data):
            l = (x * w - y) ** 2
            l.backward()
            grads.append(w.grad.item())
            w.data = w.data - lr * w.grad.data
            w.grad.data.zero_()
        epoch_losses.append(l.item())
    return {"predict4": (4 * w).item(), "w": w.item(), "grads": grads, "epoch_losses": epoch_losses}


def experiment2(seed, lr=0.01, iterations=3000):
    torch.manual_seed(seed)
    x = torch.rand([100])
    y = 4 * x + 0.6
    w = torch.rand(1, requires_grad=True)
    b = torch.rand(1, requires_grad=True)
    losses = []
    for _ in range(iterations):
        y_predict = x * w + b
        loss = (y_predict - y).pow(2).mean()
        for p in [w, b]:
            if p.grad is not None:
                p.grad.data.zero_()
        loss.backward()
        losses.append(loss.item())
        w.data -= lr * w.grad.data
        b.data -= lr * b.grad.data
    return {"w": w.item(), "b": b.item(), "losses": losses, "x": x.tolist()}


def experiment3(seed, lr=1e-3, iterations=30000, n=50):
    torch.manual_seed(seed)
    x = torch.rand([n, 1])
    y = x * 4 + 0.6
    model = nn.Linear(1, 1)
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(iterations):
        out = model(x)
        loss = criterion(y, out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {"w": model.weight.item(), "b": model.bias.item(), "losses": losses}
