"""PenalisedLoss: the loss gains exactly the configured terms, in training only."""

import torch
from torch import nn

from kanseg.engine.penalties import PenalisedLoss
from kanseg.kan import create_kan_conv
from kanseg.kan.regularization import kan_layers


def _net():
    torch.manual_seed(0)
    return nn.Sequential(create_kan_conv("gram", 2, 1, 3, 3, padding=1), create_kan_conv("gram", 2, 3, 1, 1))


def test_weight_l1_gradient_is_lambda_sign_on_all_but_the_first_layer():
    net = _net()
    x, target = torch.randn(2, 1, 6, 5), torch.rand(2, 1, 6, 5)
    task = nn.MSELoss()
    task(net(x), target).backward()
    plain = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    loss = PenalisedLoss(task, net, l1_weight=0.3)
    loss(net(x), target).backward()
    first, second = kan_layers(net)
    n_first = len(list(first.parameters()))
    for i, (p, g) in enumerate(zip(net.parameters(), plain)):
        expected = g if i < n_first else g + 0.3 * torch.sign(p.detach())
        torch.testing.assert_close(p.grad, expected)
    assert set(loss.epoch_means()) == {"l1_weight"} and loss.steps == 0


def test_activation_terms_equal_the_formula_and_skip_validation():
    net = _net()
    x, target = torch.randn(2, 1, 6, 5), torch.rand(2, 1, 6, 5)
    loss = PenalisedLoss(nn.MSELoss(), net, l1_activation=0.1, l2_activation=0.2)
    value = loss(net(x), target)
    y1 = net[0](x)
    y2 = net[1](y1)
    expected = nn.MSELoss()(y2, target) + sum(0.1 * y.abs().sum(0).mean() + 0.2 * y.square().sum(0).sqrt().mean()
                                              for y in (y1, y2))
    torch.testing.assert_close(value, expected)
    loss.penalties()  # drop what the hand computation above collected
    with torch.no_grad():
        torch.testing.assert_close(loss(net(x), target), nn.MSELoss()(net(x), target))
    assert loss._activations.outputs == []
